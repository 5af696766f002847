//! The live driver: one OS thread that owns the dispatcher and the plugin
//! instances, feeds them arrivals and request events, and starts requests
//! on the tokio runtime. Plugin calls happen inline on this thread (never in
//! an async context), and waits use the channel's timeout, so arrival times
//! are kept with sub-millisecond lag.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use super::live_view::LiveView;
use sglab_core::Nanos;
use sglab_core::arrival::Schedule;
use sglab_core::config::Backend;
use sglab_core::policy::ServerSnapshot;
use sglab_core::record::RequestRecord;
use sglab_core::session::{Act, Session, SessionConfig};
use sglab_core::workload::RequestSpec;
use tokio::sync::watch;

use crate::client::{self, Attempt, Endpoint, Http, Sending};
use crate::plugin::{RunClock, WasmBatcher, WasmRouter};
use crate::signals::Signal;

/// What request tasks (and the signal handler) tell the driver.
#[derive(Debug)]
pub enum Event {
    /// The first token of `id` arrived.
    FirstToken {
        /// Request.
        id: u64,
        /// When it was sent.
        to_server: Nanos,
        /// When the token arrived.
        at: Nanos,
    },
    /// Request `id` ended.
    Done {
        /// Request.
        id: u64,
        /// What happened.
        attempt: Attempt,
    },
    /// A signal asked the run to stop (SIGINT, SIGTERM, SIGHUP).
    Interrupt(Signal),
    /// A result file could not be written (a full disk): the run stops at once.
    WriteFailed(String),
    /// The server's latest report on a node (`/v1/loads`, `/metrics`).
    Server {
        /// Node.
        node: u32,
        /// The report, with its age.
        snapshot: ServerSnapshot,
    },
}

/// Everything the driver needs.
pub struct Input {
    /// The workload.
    pub specs: Arc<[RequestSpec]>,
    /// When requests arrive.
    pub schedule: Schedule,
    /// Each request's prefix-block hashes.
    pub prefix_hashes: Vec<Vec<u64>>,
    /// Each node.
    pub nodes: Vec<Endpoint>,
    /// Batching plugin.
    pub batcher: WasmBatcher,
    /// Routing plugin.
    pub router: WasmRouter,
    /// Run clock (started by the driver).
    pub clock: RunClock,
    /// How requests are sent (bodies, API, limits).
    pub sending: Arc<Sending>,
    /// Stop dispatching after this long (None: no limit).
    pub max_duration: Option<Nanos>,
    /// Stop dispatching after this many errors (None: no limit).
    pub max_errors: Option<u32>,
    /// False when a router in front of the nodes picks the node: records
    /// then mark the node as unknown.
    pub node_known: bool,
    /// Where finished records go.
    pub records: Sender<Vec<RequestRecord>>,
    /// Runtime for request tasks.
    pub runtime: tokio::runtime::Handle,
    /// HTTP client.
    pub http: Http,
    /// The live view (progress and rolling figures).
    pub progress: LiveView,
}

pub use sglab_core::session::Stop;

/// How the run ended.
#[derive(Debug)]
pub struct Output {
    /// Why dispatch stopped early, if it did.
    pub stop: Option<Stop>,
    /// Peak linear memory of the (batching, routing) plugins, bytes.
    pub plugin_memory: (usize, usize),
    /// Time inside the (batching, routing) plugins' calls, and call counts.
    pub plugin_time: [(std::time::Duration, u64); 2],
}

struct Driver {
    session: Session<WasmBatcher, WasmRouter>,
    clock: RunClock,
    nodes: Vec<Endpoint>,
    specs: Arc<[RequestSpec]>,
    sending: Arc<Sending>,
    records: Sender<Vec<RequestRecord>>,
    runtime: tokio::runtime::Handle,
    http: Http,
    progress: LiveView,
    events: Sender<Event>,
    in_flight: Vec<u32>,
    cancel: watch::Sender<bool>,
    acts: Vec<Act>,
}

impl Driver {
    fn handle(&mut self, ev: Event) {
        let now = self.clock.now_ns();
        match ev {
            Event::FirstToken { id, to_server, at } => self.session.first_token(id, to_server, at),
            Event::Done { id, attempt } => self.session.done(now, id, attempt),
            Event::Server { node, snapshot } => self.session.server_snapshot(node, snapshot),
            Event::WriteFailed(e) => self.session.write_failed(now, e),
            Event::Interrupt(sig) => self.session.interrupt(now, sig),
        }
    }

    fn refresh_view(&mut self, now: Nanos) {
        if self.progress.next_draw().is_some_and(|t| t <= now) {
            self.in_flight.clear();
            self.in_flight.extend(self.session.node_in_flight());
            self.progress.refresh(now, self.session.queued(), &self.in_flight);
        }
    }

    /// Carries out what the session asked for.
    fn act(&mut self) {
        self.session.take_acts(&mut self.acts);
        for act in std::mem::take(&mut self.acts).drain(..) {
            match act {
                Act::Send { id, node } => self.spawn(id, node),
                Act::Record(rec) => {
                    self.progress.record(&rec);
                    let _ = self.records.send(vec![rec]);
                }
                Act::CancelInFlight => {
                    let _ = self.cancel.send(true);
                }
                Act::Warn(w) => tracing::warn!("{w}"),
            }
        }
    }

    fn spawn(&self, id: u64, node: u32) {
        let ep = self.nodes[node as usize].clone();
        let specs = self.specs.clone();
        let http = self.http.clone();
        let clock = self.clock.clone();
        let sending = self.sending.clone();
        let events = self.events.clone();
        let cancel = self.cancel.subscribe();
        self.runtime.spawn(async move {
            // Reports Done even if this task panics, so the run never waits for it.
            let mut guard =
                DoneGuard { id, backend: sending.backend, clock: clock.clone(), events: Some(events.clone()) };
            let req = sending.request(ep, &specs[id as usize]);
            let ft = events.clone();
            let on_first = move |to_server, at| {
                let _ = ft.send(Event::FirstToken { id, to_server, at });
            };
            let attempt = client::send(&http, req, clock, cancel, on_first).await;
            guard.events = None;
            let _ = events.send(Event::Done { id, attempt });
        });
    }
}

/// Sends an error `Done` for a request task that ended without one (it panicked).
struct DoneGuard {
    id: u64,
    backend: Backend,
    clock: RunClock,
    events: Option<Sender<Event>>,
}

impl Drop for DoneGuard {
    fn drop(&mut self) {
        if let Some(events) = self.events.take() {
            let now = self.clock.now_ns();
            let mut st = client::StreamState::new(self.backend, now);
            let why = "internal error: the request task panicked".to_owned();
            st.fail(now, sglab_core::record::ErrorKind::Internal, why);
            let _ = events.send(Event::Done { id: self.id, attempt: st.attempt });
        }
    }
}

/// Runs the whole workload; returns when every request has a record.
pub fn run(input: Input, events_tx: Sender<Event>, events: Receiver<Event>) -> Output {
    let Input {
        specs,
        prefix_hashes,
        schedule,
        nodes,
        batcher,
        router,
        clock,
        sending,
        max_duration,
        max_errors,
        node_known,
        ..
    } = input;
    let cfg = SessionConfig {
        max_duration,
        max_errors,
        node_known,
        node_names: nodes.iter().map(|n| n.base.clone()).collect(),
    };
    let session = Session::new(specs.clone(), prefix_hashes, schedule, cfg, batcher, router);
    let (cancel, _) = watch::channel(false);
    let mut d = Driver {
        session,
        clock,
        nodes,
        specs,
        sending,
        records: input.records,
        runtime: input.runtime,
        http: input.http,
        progress: input.progress,
        events: events_tx,
        in_flight: Vec::new(),
        cancel,
        acts: Vec::new(),
    };
    d.clock.start();
    while !d.session.finished() {
        while let Ok(ev) = events.try_recv() {
            d.handle(ev);
        }
        d.session.poll(d.clock.now_ns());
        d.act();
        if d.session.finished() {
            break;
        }
        let now = d.clock.now_ns();
        d.refresh_view(now);
        // Wake for the view too, so it moves while nothing else happens.
        let due = [d.session.next_due(), d.progress.next_draw()].into_iter().flatten().min();
        let got = match due {
            Some(t) if t <= now => continue,
            Some(t) => events.recv_timeout(Duration::from_nanos(t - now)),
            None => events.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match got {
            Ok(ev) => d.handle(ev),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => unreachable!("the driver holds a sender"),
        }
        d.act();
    }
    d.progress.finish();
    let (stop, batcher, router) = d.session.into_parts();
    Output {
        stop,
        plugin_memory: (batcher.peak_memory(), router.peak_memory()),
        plugin_time: [batcher.call_time(), router.call_time()],
    }
}
