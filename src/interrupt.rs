//! Ctrl-C: commands that run for long install a handler that raises a flag, stop cleanly at the
//! next safe point, and return [`Interrupted`], which `main` turns into exit status 130.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;

/// The command stopped because the user pressed Ctrl-C (after saying so and saving its state).
#[derive(Debug)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

/// A flag that Ctrl-C raises.
#[derive(Debug, Clone)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// Installs the Ctrl-C handler: it raises the flag, then calls `also`.
    pub fn on_ctrl_c(also: impl Fn() + Send + 'static) -> anyhow::Result<Self> {
        let flag = Self(Arc::new(AtomicBool::new(false)));
        let raised = flag.clone();
        ctrlc::set_handler(move || {
            raised.0.store(true, Ordering::SeqCst);
            also();
        })
        .context("cannot install the Ctrl-C handler")?;
        Ok(flag)
    }

    /// Whether Ctrl-C was pressed.
    pub fn is_raised(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
