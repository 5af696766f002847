//! Running plugin instances: the core's strategy traits implemented over
//! sandboxed components. Every call runs synchronously on the calling
//! (dispatcher) thread under the per-call deadline; any trap ends the
//! instance and is reported with the plugin, the call and the cause.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sglab_core::Nanos;
use sglab_core::policy::{
    BatchPolicy, Completion, NodeIndex, NodeUpdate, PolicyError, PollResult, RequestId, RequestInfo, RouteDecision,
    RoutePolicy,
};
use wasmtime::component::ResourceAny;
use wasmtime::{Store, Trap, WasmBacktrace};

use super::runtime::{Kind, LoadError, Loaded, Pre, Runtime, TICK};
use super::sandbox::{CallBudget, Hook, PluginState, RunClock, SandboxConfig};
use super::trace::{DecisionTrace, Tracer, take_reasons};
use super::v0_1;
use super::wit::{self, batcher_world, router_world};

/// Limits and seed for one run's plugins.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Linear memory cap, bytes.
    pub memory_bytes: usize,
    /// Per-call deadline: CPU time (see [`CallBudget`]).
    pub deadline: Duration,
    /// Wall time after which any call is interrupted.
    pub backstop: Duration,
    /// Bytes of stdout/stderr kept.
    pub output_bytes: usize,
    /// Run seed.
    pub seed: u64,
}

impl Default for Limits {
    /// The `[sandbox]` defaults (64 MiB, 10 ms, 1 s backstop, 64 KiB of output), seed 0.
    fn default() -> Self {
        let s = sglab_core::config::Sandbox::default();
        Self {
            memory_bytes: s.memory_mib as usize * 1024 * 1024,
            deadline: Duration::from_millis(s.deadline_ms),
            backstop: Duration::from_millis(s.wall_backstop_ms),
            output_bytes: s.output_bytes as usize,
            seed: 0,
        }
    }
}

impl Limits {
    /// The budget of instantiating a plugin, its `info()` and its `create`
    /// (a Python plugin starts its interpreter there): at least 1 s of CPU
    /// time and 5 s of wall time.
    pub fn startup(&self) -> (Duration, Duration) {
        startup_budget(self.deadline, self.backstop)
    }
}

fn startup_budget(deadline: Duration, backstop: Duration) -> (Duration, Duration) {
    (deadline.max(Duration::from_secs(1)), backstop.max(Duration::from_secs(5)))
}

struct Instance {
    store: Store<PluginState>,
    kind: Kind,
    deadline: Duration,
    backstop: Duration,
    failed: bool,
    /// Wall time spent inside calls, and how many calls.
    busy: Duration,
    calls: u64,
}

const MIB: f64 = 1024.0 * 1024.0;

impl Instance {
    fn new(loaded: &Loaded, kind: Kind, limits: Limits, clock: RunClock) -> Self {
        let cfg = SandboxConfig {
            memory_bytes: limits.memory_bytes,
            output_bytes: limits.output_bytes,
            seed: limits.seed,
            stream: kind as u64,
        };
        let store = Runtime::get().store(&loaded.meta.name, cfg, clock);
        let backstop = limits.backstop.max(limits.deadline);
        Self { store, kind, deadline: limits.deadline, backstop, failed: false, busy: Duration::ZERO, calls: 0 }
    }

    fn error(&self, call: &'static str, cause: String) -> PolicyError {
        PolicyError { kind: self.kind.as_str(), plugin: self.store.data().name.clone(), call, cause }
    }

    fn call<R>(
        &mut self,
        call: &'static str,
        f: impl FnOnce(&mut Store<PluginState>) -> wasmtime::Result<R>,
    ) -> Result<R, PolicyError> {
        if self.failed {
            return Err(self.error(call, "the plugin already failed earlier in this run".into()));
        }
        // Instantiating and creating a plugin (a Python one compiles its
        // modules) get at least 1 s of CPU and 5 s of wall time.
        let (deadline, backstop) = match call {
            "instantiate" | "create" => startup_budget(self.deadline, self.backstop),
            _ => (self.deadline, self.backstop),
        };
        // The epoch callback fires after `ticks` ticks, then every tick, and
        // asks the call's budget (wall time first, then CPU time) whether to
        // interrupt.
        let ticks = deadline.as_nanos().div_ceil(TICK.as_nanos()).max(1) as u64;
        self.store.set_epoch_deadline(ticks);
        let started = Instant::now();
        let state = self.store.data_mut();
        state.call = Some(CallBudget::started_at(started, deadline, backstop));
        // Reasons belong to the call that logged them.
        if let Some(r) = &mut state.reasons {
            r.clear();
        }
        let result = f(&mut self.store);
        let took = started.elapsed();
        self.busy += took;
        self.calls += 1;
        result.map_err(|e| {
            self.failed = true;
            let cause = self.describe(&e, took);
            self.error(call, cause)
        })
    }

    /// One line: the trap kind, then memory, stderr and backtrace evidence.
    fn describe(&self, e: &wasmtime::Error, elapsed: Duration) -> String {
        let mut msg = match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => {
                let budget = self.store.data().call;
                let cpu = budget.and_then(|b| b.cpu_watched());
                match (budget, cpu) {
                    (Some(b), Some(cpu)) if cpu >= b.deadline => format!(
                        "deadline of {} ms exceeded: interrupted after {:.1} ms of CPU time past its first {} ms \
                         ({:.1} ms wall)",
                        b.deadline.as_millis(),
                        cpu.as_secs_f64() * 1e3,
                        b.deadline.as_millis(),
                        elapsed.as_secs_f64() * 1e3
                    ),
                    (b, _) => format!(
                        "wall-time backstop of {} ms exceeded: interrupted after {:.1} ms (sandbox.wall_backstop_ms)",
                        b.map_or(self.backstop, |b| b.backstop).as_millis(),
                        elapsed.as_secs_f64() * 1e3
                    ),
                }
            }
            Some(Trap::UnreachableCodeReached) => {
                "trapped: unreachable code reached (the plugin panicked or aborted)".to_owned()
            }
            Some(t) => format!("trapped: {t}"),
            None => format!("{e:#}"),
        };
        let state = self.store.data();
        if let Some(asked) = state.limits.refused_memory {
            msg.push_str(&format!(
                "; memory limit: growing linear memory to {:.0} MiB was refused (cap {:.0} MiB)",
                asked as f64 / MIB,
                state.limits.memory_bytes() as f64 / MIB
            ));
        }
        let stderr = state.stderr.text();
        let stderr = stderr.trim();
        if !stderr.is_empty() {
            let flat: String =
                stderr.split('\n').map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" | ");
            let tail: String = flat.chars().rev().take(600).collect::<Vec<_>>().into_iter().rev().collect();
            msg.push_str(&format!("; plugin stderr: {tail}"));
        }
        if let Some(bt) = e.downcast_ref::<WasmBacktrace>() {
            // Stripped plugins have no names; show the trace only when it says something.
            let frames: Vec<&str> = bt.frames().iter().filter_map(|f| f.func_name()).take(4).collect();
            if !frames.is_empty() {
                msg.push_str(&format!("; wasm backtrace: {}", frames.join(" <- ")));
            }
        }
        msg
    }

    fn peak_memory(&self) -> usize {
        self.store.data().limits.peak_memory
    }
}

/// A routing plugin's bindings, by the contract it was built against.
enum RouterBindings {
    V0_2(router_world::RouterPlugin),
    V0_1(v0_1::router_world::RouterPlugin),
}

/// A batching plugin's bindings, by the contract it was built against.
enum BatcherBindings {
    V0_2(batcher_world::BatcherPlugin),
    V0_1(v0_1::batcher_world::BatcherPlugin),
}

/// Evaluates `$body` with `$b` bound to the bindings of whichever contract
/// the plugin was built against and `$w` to that contract's conversions
/// (for the calls that are the same in every version).
macro_rules! per_contract {
    ($bindings:expr, $enum:ident, |$b:ident, $w:ident| $body:expr) => {
        match $bindings {
            $enum::V0_2($b) => {
                #[allow(unused_imports)]
                use super::wit as $w;
                $body
            }
            $enum::V0_1($b) => {
                #[allow(unused_imports)]
                use super::v0_1 as $w;
                $body
            }
        }
    };
}

/// A routing plugin instance.
pub struct WasmRouter {
    inst: Instance,
    bindings: RouterBindings,
    handle: ResourceAny,
    tracer: Option<Tracer>,
    /// Node changes not yet delivered (they go with the next `route`).
    nodes: Vec<wit::wt::NodeState>,
    /// Requests carry their prefix hashes: the plugin asked for
    /// `prefix-hashes` (contract 0.2), or always (0.1).
    hashes: bool,
}

/// A batching plugin instance.
pub struct WasmBatcher {
    inst: Instance,
    bindings: BatcherBindings,
    handle: ResourceAny,
    tracer: Option<Tracer>,
    /// Node changes not yet delivered (they go with the next `poll`).
    nodes: Vec<wit::wt::NodeState>,
    /// Requests carry their prefix hashes: the plugin asked for
    /// `prefix-hashes` (contract 0.2), or always (0.1).
    hashes: bool,
}

fn start_err(loaded: &Loaded, what: &str, e: PolicyError) -> LoadError {
    LoadError::Start { path: loaded.source.clone(), cause: format!("{what}: {}", e.cause) }
}

impl Instance {
    fn grant_prompts(&mut self, prompts: std::sync::Arc<Vec<sglab_core::workload::Prompt>>) {
        self.store.data_mut().prompts = Some((prompts, sglab_core::workload::RoutingTexts::default()));
    }

    fn tracer(&mut self, trace: Arc<DecisionTrace>) -> Tracer {
        self.store.data_mut().reasons = Some(Vec::new());
        Tracer { trace, in_flight: Vec::new() }
    }

    fn reasons(&mut self) -> Vec<String> {
        take_reasons(&mut self.store.data_mut().reasons)
    }

    /// The plugin said `hook` does nothing for it (`host.skip-hook`): the
    /// call would change nothing but the time spent.
    fn skips(&self, hook: Hook) -> bool {
        self.store.data().skipped.contains(hook)
    }
}

impl WasmRouter {
    /// Writes every routing decision to `trace`.
    pub fn trace_decisions(&mut self, trace: Arc<DecisionTrace>) {
        self.tracer = Some(self.inst.tracer(trace));
    }

    /// Gives the plugin `host.prompt-text` (only call when it asked for the
    /// `prompt-text` capability).
    pub fn grant_prompts(&mut self, prompts: std::sync::Arc<Vec<sglab_core::workload::Prompt>>) {
        self.inst.grant_prompts(prompts);
    }

    /// Instantiates `loaded` and calls `create(config_json)`.
    pub fn new(loaded: &Loaded, config_json: &str, limits: Limits, clock: RunClock) -> Result<Self, LoadError> {
        let mut inst = Instance::new(loaded, Kind::Routing, limits, clock);
        let failed = |e| start_err(loaded, "instantiate", e);
        let bindings = match &loaded.pre {
            Pre::Router(pre) => RouterBindings::V0_2(inst.call("instantiate", |s| pre.instantiate(s)).map_err(failed)?),
            Pre::RouterV0_1(pre) => {
                RouterBindings::V0_1(inst.call("instantiate", |s| pre.instantiate(s)).map_err(failed)?)
            }
            Pre::Batcher(_) | Pre::BatcherV0_1(_) => unreachable!("loaded as routing"),
        };
        let created = per_contract!(&bindings, RouterBindings, |b, w| inst
            .call("create", |s| b.sglab_strategy_router().router().call_create(s, config_json))
            .map(|made| made.map_err(w::plugin_error)));
        let handle = created.map_err(|e| start_err(loaded, "create", e))?.map_err(LoadError::Config)?;
        let hashes = matches!(bindings, RouterBindings::V0_1(_)) || loaded.meta.capabilities.contains(&"prefix-hashes");
        Ok(Self { inst, bindings, handle, tracer: None, nodes: Vec::new(), hashes })
    }

    /// Largest linear memory the instance was granted, bytes.
    pub fn peak_memory(&self) -> usize {
        self.inst.peak_memory()
    }

    /// Time spent inside the plugin's calls, and how many calls it took.
    pub fn call_time(&self) -> (Duration, u64) {
        (self.inst.busy, self.inst.calls)
    }
}

impl WasmBatcher {
    /// Writes every release to `trace`.
    pub fn trace_decisions(&mut self, trace: Arc<DecisionTrace>) {
        self.tracer = Some(self.inst.tracer(trace));
    }

    /// Gives the plugin `host.prompt-text` (only call when it asked for the
    /// `prompt-text` capability).
    pub fn grant_prompts(&mut self, prompts: std::sync::Arc<Vec<sglab_core::workload::Prompt>>) {
        self.inst.grant_prompts(prompts);
    }

    /// Instantiates `loaded` and calls `create(config_json)`.
    pub fn new(loaded: &Loaded, config_json: &str, limits: Limits, clock: RunClock) -> Result<Self, LoadError> {
        let mut inst = Instance::new(loaded, Kind::Batching, limits, clock);
        let failed = |e| start_err(loaded, "instantiate", e);
        let bindings = match &loaded.pre {
            Pre::Batcher(pre) => {
                BatcherBindings::V0_2(inst.call("instantiate", |s| pre.instantiate(s)).map_err(failed)?)
            }
            Pre::BatcherV0_1(pre) => {
                BatcherBindings::V0_1(inst.call("instantiate", |s| pre.instantiate(s)).map_err(failed)?)
            }
            Pre::Router(_) | Pre::RouterV0_1(_) => unreachable!("loaded as batching"),
        };
        let created = per_contract!(&bindings, BatcherBindings, |b, w| inst
            .call("create", |s| b.sglab_strategy_batcher().batcher().call_create(s, config_json))
            .map(|made| made.map_err(w::plugin_error)));
        let handle = created.map_err(|e| start_err(loaded, "create", e))?.map_err(LoadError::Config)?;
        let hashes =
            matches!(bindings, BatcherBindings::V0_1(_)) || loaded.meta.capabilities.contains(&"prefix-hashes");
        Ok(Self { inst, bindings, handle, tracer: None, nodes: Vec::new(), hashes })
    }

    /// Largest linear memory the instance was granted, bytes.
    pub fn peak_memory(&self) -> usize {
        self.inst.peak_memory()
    }

    /// Time spent inside the plugin's calls, and how many calls it took.
    pub fn call_time(&self) -> (Duration, u64) {
        (self.inst.busy, self.inst.calls)
    }
}

impl RoutePolicy for WasmRouter {
    fn name(&self) -> &str {
        &self.inst.store.data().name
    }

    fn on_nodes(&mut self, update: &NodeUpdate) -> Result<(), PolicyError> {
        if let Some(t) = &mut self.tracer {
            t.nodes(update);
        }
        let h = self.handle;
        match &self.bindings {
            RouterBindings::V0_2(_) => {
                wit::merge_update(&mut self.nodes, update);
                Ok(())
            }
            RouterBindings::V0_1(b) => {
                let u = v0_1::node_update(update);
                self.inst.call("on-nodes", |s| b.sglab_strategy_router().router().call_on_nodes(s, h, &u))
            }
        }
    }

    fn route(&mut self, request: &RequestInfo) -> Result<RouteDecision, PolicyError> {
        let h = self.handle;
        let decision = match &self.bindings {
            RouterBindings::V0_2(b) => {
                let r = wit::request(request, self.hashes);
                let router = b.sglab_strategy_router().router();
                let nodes = &self.nodes;
                let decided = self.inst.call("route", |s| router.call_route(s, h, nodes, &r));
                // Delivered: the buffer is kept for the next deltas.
                self.nodes.clear();
                decided.map(wit::route_decision)?
            }
            RouterBindings::V0_1(b) => {
                let r = v0_1::request(request, true);
                let router = b.sglab_strategy_router().router();
                self.inst.call("route", |s| router.call_route(s, h, &r)).map(v0_1::route_decision)?
            }
        };
        if let Some(t) = &self.tracer {
            let (reasons, now) = (self.inst.reasons(), self.inst.store.data().now_ns());
            t.trace.route(now, request.id, &decision, &t.in_flight, reasons);
        }
        Ok(decision)
    }

    fn on_dispatched(&mut self, id: RequestId, node: NodeIndex, now: Nanos) -> Result<(), PolicyError> {
        if self.inst.skips(Hook::OnDispatched) {
            return Ok(());
        }
        let h = self.handle;
        per_contract!(&self.bindings, RouterBindings, |b, _w| self
            .inst
            .call("on-dispatched", |s| b.sglab_strategy_router().router().call_on_dispatched(s, h, id, node, now)))
    }

    fn on_first_token(&mut self, id: RequestId, node: NodeIndex, now: Nanos) -> Result<(), PolicyError> {
        if self.inst.skips(Hook::OnFirstToken) {
            return Ok(());
        }
        let h = self.handle;
        per_contract!(&self.bindings, RouterBindings, |b, _w| self
            .inst
            .call("on-first-token", |s| b.sglab_strategy_router().router().call_on_first_token(s, h, id, node, now)))
    }

    fn on_complete(&mut self, done: &Completion) -> Result<(), PolicyError> {
        if self.inst.skips(Hook::OnComplete) {
            return Ok(());
        }
        let h = self.handle;
        per_contract!(&self.bindings, RouterBindings, |b, w| {
            let c = w::completion(done);
            self.inst.call("on-complete", |s| b.sglab_strategy_router().router().call_on_complete(s, h, c))
        })
    }

    fn on_tick(&mut self, now: Nanos) -> Result<(), PolicyError> {
        if self.inst.skips(Hook::OnTick) {
            return Ok(());
        }
        let h = self.handle;
        per_contract!(&self.bindings, RouterBindings, |b, _w| self
            .inst
            .call("on-tick", |s| b.sglab_strategy_router().router().call_on_tick(s, h, now)))
    }
}

impl BatchPolicy for WasmBatcher {
    fn name(&self) -> &str {
        &self.inst.store.data().name
    }

    fn on_nodes(&mut self, update: &NodeUpdate) -> Result<(), PolicyError> {
        let h = self.handle;
        match &self.bindings {
            BatcherBindings::V0_2(_) => {
                wit::merge_update(&mut self.nodes, update);
                Ok(())
            }
            BatcherBindings::V0_1(b) => {
                let u = v0_1::node_update(update);
                self.inst.call("on-nodes", |s| b.sglab_strategy_batcher().batcher().call_on_nodes(s, h, &u))
            }
        }
    }

    fn on_arrival(&mut self, request: &RequestInfo) -> Result<(), PolicyError> {
        if self.inst.skips(Hook::OnArrival) {
            return Ok(());
        }
        let h = self.handle;
        per_contract!(&self.bindings, BatcherBindings, |b, w| {
            let r = w::request(request, self.hashes);
            self.inst.call("on-arrival", |s| b.sglab_strategy_batcher().batcher().call_on_arrival(s, h, &r))
        })
    }

    fn on_complete(&mut self, done: &Completion) -> Result<(), PolicyError> {
        if self.inst.skips(Hook::OnComplete) {
            return Ok(());
        }
        let h = self.handle;
        per_contract!(&self.bindings, BatcherBindings, |b, w| {
            let c = w::completion(done);
            self.inst.call("on-complete", |s| b.sglab_strategy_batcher().batcher().call_on_complete(s, h, c))
        })
    }

    fn poll(&mut self, now: Nanos) -> Result<PollResult, PolicyError> {
        let h = self.handle;
        let polled = match &self.bindings {
            BatcherBindings::V0_2(b) => {
                let batcher = b.sglab_strategy_batcher().batcher();
                let nodes = &self.nodes;
                let polled = self.inst.call("poll", |s| batcher.call_poll(s, h, now, nodes));
                // Delivered: the buffer is kept for the next deltas.
                self.nodes.clear();
                polled.map(wit::poll_result)?
            }
            BatcherBindings::V0_1(b) => {
                let batcher = b.sglab_strategy_batcher().batcher();
                self.inst.call("poll", |s| batcher.call_poll(s, h, now)).map(v0_1::poll_result)?
            }
        };
        if let Some(t) = &self.tracer {
            let reasons = self.inst.reasons();
            if !polled.release.is_empty() || !reasons.is_empty() {
                t.trace.release(now, &polled.release, polled.wake_at, reasons);
            }
        }
        Ok(polled)
    }
}
