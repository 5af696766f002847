//! The signals that end a run (SIGINT, SIGTERM, SIGHUP), watched from the
//! start of `sglab run` so that node startup, warm-up and dispatch all see
//! them. The first one stops the run through its one shutdown path; a
//! second one also cancels the requests in flight.

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

pub use sglab_core::session::Signal;

/// What has been received so far: the first signal and how many came.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Received {
    /// The first signal (it sets the exit code).
    pub first: Option<Signal>,
    /// How many signals arrived.
    pub count: u32,
}

/// Installs the handlers (from then on these signals no longer kill the
/// process) and returns a receiver that changes with every signal. Must be
/// called inside the tokio runtime.
pub fn watch() -> std::io::Result<watch::Receiver<Received>> {
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let (tx, rx) = watch::channel(Received::default());
    tokio::spawn(async move {
        loop {
            let s = tokio::select! {
                _ = int.recv() => Signal::Int,
                _ = term.recv() => Signal::Term,
                _ = hup.recv() => Signal::Hup,
            };
            tracing::warn!("{} received: stopping the run", s.name());
            tx.send_modify(|r| {
                r.first.get_or_insert(s);
                r.count += 1;
            });
        }
    });
    Ok(rx)
}

/// Waits until a signal has been received; returns the first one.
pub async fn first(rx: &mut watch::Receiver<Received>) -> Signal {
    let got = rx.wait_for(|r| r.first.is_some()).await.map(|r| r.first);
    match got {
        Ok(Some(s)) => s,
        // The watcher task never ends while the runtime lives.
        _ => std::future::pending().await,
    }
}
