//! Ctrl-C while Terraform runs: the first one is forwarded to Terraform (which then stops
//! cleanly and saves its state) and calops waits; a second one kills it.
//!
//! The handler only counts signals; the runner's wait loop acts on the count. Terraform runs
//! in its own process group when interrupts are handled, so the terminal's SIGINT reaches only
//! calops and Terraform sees exactly one forwarded SIGINT.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

static RECEIVED: AtomicUsize = AtomicUsize::new(0);
static HANDLED: AtomicUsize = AtomicUsize::new(0);
static INSTALL: Once = Once::new();

extern "C" fn on_sigint(_: libc::c_int) {
    RECEIVED.fetch_add(1, Ordering::SeqCst);
}

/// Install the counting SIGINT handler (once per process).
pub fn install() {
    INSTALL.call_once(|| {
        use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
        let action = SigAction::new(
            SigHandler::Handler(on_sigint),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        // SAFETY: the handler only touches an atomic, which is async-signal-safe.
        if let Err(e) = unsafe { sigaction(Signal::SIGINT, &action) } {
            tracing::warn!("could not install the SIGINT handler: {e}");
        }
    });
}

/// Whether the handler is installed.
pub fn installed() -> bool {
    INSTALL.is_completed()
}

/// Signals received so far.
pub fn received() -> usize {
    RECEIVED.load(Ordering::SeqCst)
}

/// Signals received that no run has acted on yet (Ctrl-C between two Terraform steps).
pub fn pending() -> usize {
    received().saturating_sub(HANDLED.load(Ordering::SeqCst))
}

/// Mark every signal received so far as acted on.
pub fn mark_handled() {
    HANDLED.store(received(), Ordering::SeqCst);
}
