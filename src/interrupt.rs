//! Stopping cleanly on a signal: commands that run for long watch SIGINT (Ctrl-C), SIGTERM (a
//! scheduler's time limit, `timeout`, `docker stop`, a shutdown) and SIGHUP (a closed terminal),
//! stop at the next safe point after saving their state, and return [`Interrupted`], which `main`
//! turns into the conventional exit status 128 + the signal's number.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use anyhow::Context;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// The command stopped because of this signal (after saying so and saving its state).
#[derive(Debug, Clone, Copy)]
pub struct Interrupted(pub i32);

impl Interrupted {
    /// The exit status a shell reports for a process ended by the signal: 128 + its number.
    pub fn exit_status(self) -> u8 {
        (128 + self.0).clamp(0, 255) as u8
    }
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.0 {
            SIGINT => "SIGINT",
            SIGTERM => "SIGTERM",
            SIGHUP => "SIGHUP",
            _ => "a signal",
        };
        write!(f, "interrupted by {name}")
    }
}

impl std::error::Error for Interrupted {}

/// A flag that SIGINT, SIGTERM or SIGHUP raises, holding the signal's number.
#[derive(Debug, Clone)]
pub struct StopFlag(Arc<AtomicI32>);

impl StopFlag {
    /// Watches the three signals from a background thread: the first raises the flag, and each
    /// is passed to `also` (e.g. to forward it to child processes).
    pub fn on_signals(also: impl Fn(i32) + Send + 'static) -> anyhow::Result<Self> {
        let flag = Self(Arc::new(AtomicI32::new(0)));
        let raised = flag.clone();
        let mut signals =
            Signals::new([SIGINT, SIGTERM, SIGHUP]).context("cannot install signal handlers")?;
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    let _ =
                        raised
                            .0
                            .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
                    also(signal);
                }
            })
            .context("cannot start the signal watcher")?;
        Ok(flag)
    }

    /// Whether a signal arrived.
    pub fn is_raised(&self) -> bool {
        self.0.load(Ordering::SeqCst) != 0
    }

    /// The error that reports the stop ([`Interrupted`] with the first signal, SIGINT if none).
    pub fn interrupted(&self) -> Interrupted {
        match self.0.load(Ordering::SeqCst) {
            0 => Interrupted(SIGINT),
            s => Interrupted(s),
        }
    }
}
