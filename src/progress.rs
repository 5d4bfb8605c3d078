//! Progress of a long command in steps (`train`, `sweep`): a bar on stderr when it is a
//! terminal, otherwise plain lines on stdout that the command prints when [`Progress::show`]
//! says one is due; nothing at all with `--quiet`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress view over `total` steps.
pub struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
    total: u64,
    /// When the last plain line was due, and at which step.
    last: (Instant, u64),
}

/// What a due plain line reports.
pub struct Line {
    /// Steps per second since the previous line.
    pub rate: f64,
    /// Seconds left at that rate.
    pub eta: f64,
}

impl Progress {
    /// A view at `step` of `total`; the bar shows the speed when `rate`.
    pub fn new(total: u64, step: u64, quiet: bool, rate: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let template = if rate {
                "{elapsed_precise} [{wide_bar}] {pos}/{len} steps  {per_sec}  ETA {eta}  {msg}"
            } else {
                "{elapsed_precise} [{wide_bar}] {pos}/{len} steps  ETA {eta}  {msg}"
            };
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(template)
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.set_position(step);
            bar.reset_eta();
            bar
        });
        Self {
            bar,
            quiet,
            total,
            last: (Instant::now(), step),
        }
    }

    /// Moves the bar to `step`.
    pub fn step(&self, step: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(step);
        }
    }

    /// Shows `msg` at `step` on the bar; without a bar (and unless quiet), returns the line to
    /// print when at least `every` has passed since the previous one.
    pub fn show(&mut self, step: u64, msg: String, every: Duration) -> Option<Line> {
        if let Some(bar) = &self.bar {
            bar.set_position(step);
            bar.set_message(msg);
            return None;
        }
        let (t0, s0) = self.last;
        if self.quiet || t0.elapsed() < every {
            return None;
        }
        let rate = step.saturating_sub(s0) as f64 / t0.elapsed().as_secs_f64().max(1e-9);
        let eta = if rate > 0.0 {
            self.total.saturating_sub(step) as f64 / rate
        } else {
            0.0
        };
        self.last = (Instant::now(), step);
        Some(Line { rate, eta })
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
