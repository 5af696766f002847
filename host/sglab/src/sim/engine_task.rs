//! The thread that owns the simulator engine and its clock: it accepts
//! requests, sleeps until the next token is due, and hands token events to
//! each request's stream. A plain OS thread waiting on a channel with a
//! timeout wakes within tens of microseconds of a deadline, where tokio's
//! timer wheel rounds every sleep up to the next millisecond.

use std::collections::HashMap;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use sglab_core::sim::{Engine, SimRequest, TokenEvent};
use tokio::sync::mpsc;

struct Submit {
    key: u64,
    req: SimRequest,
    events: mpsc::UnboundedSender<TokenEvent>,
}

/// Handle for submitting requests to the engine thread.
#[derive(Debug, Clone)]
pub struct EngineHandle {
    cmds: std_mpsc::Sender<Submit>,
}

impl EngineHandle {
    /// Submits a request; its events arrive on the returned receiver, the
    /// last one with `finished`. Dropping the receiver cancels the request.
    pub fn submit(&self, key: u64, req: SimRequest) -> mpsc::UnboundedReceiver<TokenEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        // If the engine thread is gone the receiver just closes.
        let _ = self.cmds.send(Submit { key, req, events: tx });
        rx
    }
}

/// Starts the engine thread; `start` is the server's time zero.
pub fn spawn<E: Engine + Send + 'static>(mut engine: E, start: Instant) -> EngineHandle {
    let (cmds, rx) = std_mpsc::channel::<Submit>();
    std::thread::Builder::new()
        .name("sglab-sim-engine".into())
        .spawn(move || {
            let now_ns = || start.elapsed().as_nanos() as u64;
            let mut streams: HashMap<u64, mpsc::UnboundedSender<TokenEvent>> = HashMap::new();
            let mut due = Vec::new();
            loop {
                let got = match engine.next_event_at() {
                    Some(t) => {
                        let now = now_ns();
                        if t <= now {
                            Err(std_mpsc::RecvTimeoutError::Timeout)
                        } else {
                            rx.recv_timeout(Duration::from_nanos(t - now))
                        }
                    }
                    None => rx.recv().map_err(|_| std_mpsc::RecvTimeoutError::Disconnected),
                };
                match got {
                    Ok(first) => {
                        let now = now_ns();
                        for s in std::iter::once(first).chain(rx.try_iter()) {
                            engine.submit(now, s.key, s.req);
                            streams.insert(s.key, s.events);
                        }
                    }
                    Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
                }
                engine.advance(now_ns(), &mut due);
                for ev in due.drain(..) {
                    let gone = streams.get(&ev.key).is_none_or(|tx| tx.send(ev).is_err());
                    if ev.finished || gone {
                        streams.remove(&ev.key);
                        if gone && !ev.finished {
                            engine.cancel(ev.key);
                        }
                    }
                }
            }
        })
        .expect("spawn the simulator engine thread");
    EngineHandle { cmds }
}
