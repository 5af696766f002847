//! The thread that owns the simulator engine and the clock.
//!
//! It accepts requests, sleeps until the engine's next event on an absolute
//! deadline, and hands token events (stamped with simulated time) to each
//! request's stream. A plain OS thread waiting on a channel with a timeout
//! wakes within tens of microseconds of a deadline, where tokio's timer
//! rounds every sleep up to the next millisecond. With `--time-scale s`, one
//! simulated second lasts `s` wall seconds. The lateness of every wake-up is
//! measured and reported (`sglab:sim_step_lag_seconds`).

use std::collections::HashMap;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sglab_core::Nanos;
use sglab_core::sim::{Engine, EngineStats, SimRequest, TokenEvent};
use tokio::sync::{mpsc, oneshot};

/// A token event and the simulated time it happened.
pub type Stamped = (TokenEvent, Nanos);

enum Cmd {
    Submit { key: u64, req: SimRequest, events: mpsc::UnboundedSender<Stamped> },
    Flush(oneshot::Sender<Result<(), String>>),
}

/// Wake-up lateness, simulated-clock independent (wall seconds).
#[derive(Debug, Clone, Default)]
pub struct Lag {
    /// Wake-ups measured.
    pub count: u64,
    /// Sum of lateness, s.
    pub sum: f64,
    /// Largest lateness, s.
    pub max: f64,
    /// Wake-ups later than 1 ms.
    pub over_1ms: u64,
}

/// What the engine thread publishes after every step.
#[derive(Debug, Clone, Default)]
pub struct Published {
    /// Engine counters.
    pub stats: EngineStats,
    /// Wake-up lateness.
    pub lag: Lag,
    /// Requests accepted and not finished.
    pub active: usize,
}

/// Handle to the engine thread.
#[derive(Debug, Clone)]
pub struct EngineHandle {
    cmds: std_mpsc::Sender<Cmd>,
    /// Latest counters.
    pub published: Arc<Mutex<Published>>,
    clock: SimClock,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cmd")
    }
}

/// Simulated time: wall time since start divided by the time scale.
#[derive(Debug, Clone, Copy)]
pub struct SimClock {
    start: Instant,
    scale: f64,
}

impl SimClock {
    /// Simulated ns now.
    pub fn now(&self) -> Nanos {
        (self.start.elapsed().as_nanos() as f64 / self.scale) as Nanos
    }

    /// The wall instant of simulated time `t`.
    pub fn wall(&self, t: Nanos) -> Instant {
        self.start + Duration::from_nanos((t as f64 * self.scale) as u64)
    }
}

impl EngineHandle {
    /// Submits a request; its events arrive on the returned receiver, the
    /// last one with `finished`. Dropping the receiver cancels the request.
    pub fn submit(&self, key: u64, req: SimRequest) -> mpsc::UnboundedReceiver<Stamped> {
        let (tx, rx) = mpsc::unbounded_channel();
        // If the engine thread is gone the receiver just closes.
        let _ = self.cmds.send(Cmd::Submit { key, req, events: tx });
        rx
    }

    /// Flushes the prefix cache when idle.
    pub async fn flush(&self) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.cmds.send(Cmd::Flush(tx)).map_err(|_| "engine stopped".to_owned())?;
        rx.await.map_err(|_| "engine stopped".to_owned())?
    }

    /// Simulated time now.
    pub fn now(&self) -> Nanos {
        self.clock.now()
    }
}

/// Starts the engine thread. `crash_after` exits the process once that many
/// requests have finished (fault injection).
pub fn spawn(mut engine: Box<dyn Engine + Send>, scale: f64, crash_after: Option<u64>) -> EngineHandle {
    let (cmds, rx) = std_mpsc::channel::<Cmd>();
    let clock = SimClock { start: Instant::now(), scale };
    let published = Arc::new(Mutex::new(Published { stats: engine.stats(), ..Published::default() }));
    let out = published.clone();
    std::thread::Builder::new()
        .name("sglab-sim-engine".into())
        .spawn(move || {
            raise_priority();
            let mut streams: HashMap<u64, mpsc::UnboundedSender<Stamped>> = HashMap::new();
            let mut due = Vec::new();
            let mut lag = Lag::default();
            let mut finished: u64 = 0;
            loop {
                let target = engine.next_event_at();
                let got = match target {
                    Some(t) => {
                        let wait = clock.wall(t).saturating_duration_since(Instant::now());
                        if wait.is_zero() { Err(std_mpsc::RecvTimeoutError::Timeout) } else { rx.recv_timeout(wait) }
                    }
                    None => rx.recv().map_err(|_| std_mpsc::RecvTimeoutError::Disconnected),
                };
                match got {
                    Ok(first) => {
                        let now = clock.now();
                        for cmd in std::iter::once(first).chain(rx.try_iter()) {
                            match cmd {
                                Cmd::Submit { key, req, events } => {
                                    engine.submit(now, key, req);
                                    streams.insert(key, events);
                                }
                                Cmd::Flush(reply) => {
                                    let _ = reply.send(engine.flush_cache());
                                }
                            }
                        }
                    }
                    Err(std_mpsc::RecvTimeoutError::Timeout) => {
                        if let Some(t) = target {
                            let late = Instant::now().saturating_duration_since(clock.wall(t)).as_secs_f64();
                            lag.count += 1;
                            lag.sum += late;
                            lag.max = lag.max.max(late);
                            lag.over_1ms += (late > 1e-3) as u64;
                        }
                    }
                    Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
                }
                let now = clock.now();
                engine.advance(now, &mut due);
                for ev in due.drain(..) {
                    let key = ev.key;
                    let done = ev.finished;
                    let gone = streams.get(&key).is_none_or(|tx| tx.send((ev, now)).is_err());
                    if done || gone {
                        streams.remove(&key);
                        if gone && !done {
                            engine.cancel(key);
                        }
                    }
                    if done {
                        finished += 1;
                        if crash_after.is_some_and(|n| finished >= n) {
                            tracing::error!("--crash-after-requests: {finished} requests finished; exiting");
                            std::process::exit(3);
                        }
                    }
                }
                let mut p = out.lock().expect("published stats");
                p.stats = engine.stats();
                p.lag = lag.clone();
                p.active = engine.active();
            }
        })
        .expect("spawn the simulator engine thread");
    EngineHandle { cmds, published, clock }
}

/// Asks the OS to prefer this thread (nice -10) so that its deadlines are
/// kept when the machine is busy (e.g. the load generator on the same host).
/// Without the privilege to do so it stays at normal priority.
fn raise_priority() {
    // SAFETY: plain syscalls on the calling thread; no memory is shared.
    #[allow(unsafe_code)]
    let rc = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, -10)
    };
    if rc != 0 {
        tracing::debug!("could not raise the engine thread's priority; running at normal priority");
    }
}
