//! Running pipeline steps: progress on stderr (what it waits for, elapsed, timeout), timings for
//! the release record, and Ctrl-C between and inside steps.

use super::ledger::StepTiming;
use crate::ui::Ui;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why a step did not finish.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("interrupted (Ctrl-C) during step `{0}`")]
    Interrupted(String),
    #[error("step `{step}` timed out after {secs} s while {waiting}")]
    TimedOut {
        step: String,
        secs: u64,
        waiting: String,
    },
    #[error("step `{step}` failed: {source:#}")]
    Failed { step: String, source: anyhow::Error },
}

/// Set by the Ctrl-C handler; steps check it.
#[derive(Clone, Default)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    pub fn raise(&self) {
        self.0.store(true, Ordering::SeqCst)
    }
    pub fn raised(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
    /// Resolves once raised.
    pub async fn wait(&self) {
        while !self.raised() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    /// Raise on the first SIGINT or SIGTERM received by this process. The handlers are
    /// registered before this returns, so a signal that arrives right after is never lost.
    pub fn install(&self) {
        use tokio::signal::unix::{signal, SignalKind};
        let me = self.clone();
        let mut int = signal(SignalKind::interrupt()).ok();
        let mut term = signal(SignalKind::terminate()).ok();
        tokio::spawn(async move {
            async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
                match s.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                _ = next(&mut int) => {}
                _ = next(&mut term) => {}
            }
            me.raise();
        });
    }
}

/// The running step's spinner line, shared with targets so they can show what they are
/// waiting for ("backend 10.0.1.10:8080 CRITICAL").
#[derive(Clone, Default)]
pub struct StatusLine(Arc<std::sync::Mutex<Option<(indicatif::ProgressBar, String)>>>);

impl StatusLine {
    /// Append `detail` to the running step's spinner message (nothing when no step runs).
    pub fn set(&self, detail: &str) {
        if let Ok(g) = self.0.lock() {
            if let Some((pb, base)) = &*g {
                pb.set_message(format!("{base} — {detail}"));
            }
        }
    }
}

pub struct Steps<'a> {
    ui: &'a Ui,
    pub timings: Vec<StepTiming>,
    pub interrupt: Interrupt,
    pub status: StatusLine,
}

impl<'a> Steps<'a> {
    pub fn new(ui: &'a Ui, interrupt: Interrupt) -> Self {
        Steps {
            ui,
            timings: Vec::new(),
            interrupt,
            status: StatusLine::default(),
        }
    }

    pub fn ui(&self) -> &Ui {
        self.ui
    }

    /// Record a step that was not needed.
    pub fn skip(&mut self, name: &str, why: &str) {
        self.ui.note(format!("  - {name}: skipped ({why})"));
        self.timings.push(StepTiming {
            name: name.into(),
            millis: 0,
            status: "skipped".into(),
            note: Some(why.into()),
        });
    }

    /// Run one step with a spinner showing what it waits for, elapsed time and timeout.
    pub async fn run<T>(
        &mut self,
        name: &str,
        waiting: &str,
        timeout: Duration,
        fut: impl Future<Output = anyhow::Result<T>>,
    ) -> Result<T, StepError> {
        if self.interrupt.raised() {
            return Err(StepError::Interrupted(name.into()));
        }
        let base = format!("{name}: {waiting} (timeout {} s)", timeout.as_secs());
        let pb = self.ui.spinner(base.clone());
        if let Ok(mut g) = self.status.0.lock() {
            *g = Some((pb.clone(), base));
        }
        let start = Instant::now();
        let result = tokio::select! {
            r = tokio::time::timeout(timeout, fut) => match r {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => Err(StepError::Failed { step: name.into(), source: e }),
                Err(_) => Err(StepError::TimedOut { step: name.into(), secs: timeout.as_secs(), waiting: waiting.into() }),
            },
            _ = self.interrupt.wait() => Err(StepError::Interrupted(name.into())),
        };
        if let Ok(mut g) = self.status.0.lock() {
            *g = None;
        }
        pb.finish_and_clear();
        let millis = start.elapsed().as_millis() as u64;
        let status = if result.is_ok() { "done" } else { "failed" };
        self.ui.note(format!(
            "  {} {name} ({:.1} s)",
            if result.is_ok() { "✓" } else { "✗" },
            millis as f64 / 1000.0
        ));
        self.timings.push(StepTiming {
            name: name.into(),
            millis,
            status: status.into(),
            note: None,
        });
        result
    }
}
