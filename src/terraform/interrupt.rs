//! Ctrl-C while Terraform runs: the first one is forwarded to Terraform (which then stops
//! cleanly and saves its state) and calops waits; a second one kills it.
//!
//! While a run is in progress a counting SIGINT handler replaces the previous disposition
//! (restored when the run ends, so Ctrl-C elsewhere in calops behaves as usual); the runner's
//! wait loop acts on the count. Terraform runs in its own process group then, so the
//! terminal's SIGINT reaches only calops and Terraform sees exactly one forwarded SIGINT.

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use std::sync::atomic::{AtomicUsize, Ordering};

static RECEIVED: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_sigint(_: libc::c_int) {
    RECEIVED.fetch_add(1, Ordering::SeqCst);
}

/// Signals received so far (monotonic; compare against a baseline).
pub fn received() -> usize {
    RECEIVED.load(Ordering::SeqCst)
}

/// The counting handler, installed for as long as this value lives.
pub struct Counting {
    previous: Option<SigAction>,
}

impl Counting {
    pub fn install() -> Counting {
        let action = SigAction::new(
            SigHandler::Handler(on_sigint),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        // SAFETY: the handler only touches an atomic, which is async-signal-safe.
        let previous = match unsafe { sigaction(Signal::SIGINT, &action) } {
            Ok(old) => Some(old),
            Err(e) => {
                tracing::warn!("could not install the SIGINT handler: {e}");
                None
            }
        };
        Counting { previous }
    }
}

impl Drop for Counting {
    fn drop(&mut self) {
        if let Some(old) = &self.previous {
            // SAFETY: restoring the disposition that was in place before `install`.
            let _ = unsafe { sigaction(Signal::SIGINT, old) };
        }
    }
}
