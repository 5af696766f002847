//! The per-plugin sandbox: a deny-all WASI context, captured and capped
//! output, the run's clock and seeded randomness, and a memory limiter that
//! remembers what it refused.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sglab_core::rng::Rng;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// The run's clock: nanoseconds since the run started. In live runs the
/// monotonic clock (never wall time): before [`RunClock::start`] it reads
/// 0, so plugins created ahead of the run see time begin with the run. In
/// virtual runs ([`RunClock::manual`]) the discrete-event loop sets it;
/// records, `now-ns` and the WASI clocks all read it, while plugin
/// deadlines keep counting host time.
#[derive(Debug, Clone, Default)]
pub struct RunClock {
    inner: Arc<ClockInner>,
}

#[derive(Debug)]
enum ClockInner {
    /// Live runs: a monotonic instant, anchored when the run starts.
    Monotonic(OnceLock<Instant>),
    /// Virtual time: whatever the driver last set.
    Manual(AtomicU64),
}

impl Default for ClockInner {
    fn default() -> Self {
        ClockInner::Monotonic(OnceLock::new())
    }
}

impl RunClock {
    /// An unstarted live clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// A virtual clock at 0, moved only by [`RunClock::set`].
    pub fn manual() -> Self {
        Self { inner: Arc::new(ClockInner::Manual(AtomicU64::new(0))) }
    }

    /// Starts a live clock now (once; later calls keep the first anchor).
    /// A virtual clock is unaffected.
    pub fn start(&self) {
        if let ClockInner::Monotonic(anchor) = &*self.inner {
            anchor.get_or_init(Instant::now);
        }
    }

    /// Moves a virtual clock to `ns` (a live clock ignores it).
    pub fn set(&self, ns: u64) {
        if let ClockInner::Manual(t) = &*self.inner {
            t.store(ns, Ordering::Relaxed);
        }
    }

    /// Nanoseconds since the run started (0 before it started).
    pub fn now_ns(&self) -> u64 {
        match &*self.inner {
            ClockInner::Monotonic(anchor) => anchor.get().map_or(0, |a| a.elapsed().as_nanos() as u64),
            ClockInner::Manual(t) => t.load(Ordering::Relaxed),
        }
    }
}

impl HostMonotonicClock for RunClock {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        self.now_ns()
    }
}

impl HostWallClock for RunClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }
    /// Plugins see the Unix epoch as the run's start: wall time is virtual.
    fn now(&self) -> Duration {
        Duration::from_nanos(self.now_ns())
    }
}

/// The run's seeded generator, as WASI's random source.
struct SeededRandom(Rng);

impl rand_core::TryRng for SeededRandom {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok(self.0.next_u64() as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(self.0.next_u64())
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for chunk in dst.chunks_mut(8) {
            chunk.copy_from_slice(&self.0.next_u64().to_le_bytes()[..chunk.len()]);
        }
        Ok(())
    }
}

/// Plugin stdout or stderr: keeps the last `cap` bytes, drops the rest
/// silently (writes always succeed, so a chatty plugin is not broken by it).
#[derive(Debug, Clone)]
pub struct CapturedOutput {
    inner: Arc<Mutex<Captured>>,
}

#[derive(Debug)]
struct Captured {
    tail: VecDeque<u8>,
    cap: usize,
    dropped: u64,
}

impl CapturedOutput {
    /// Keeps at most `cap` bytes.
    pub fn new(cap: usize) -> Self {
        Self { inner: Arc::new(Mutex::new(Captured { tail: VecDeque::new(), cap, dropped: 0 })) }
    }

    fn push(&self, bytes: &[u8]) {
        let mut c = self.inner.lock().expect("captured output lock");
        c.tail.extend(bytes);
        let excess = c.tail.len().saturating_sub(c.cap);
        if excess > 0 {
            c.tail.drain(..excess);
            c.dropped += excess as u64;
        }
    }

    /// What was kept, lossily decoded, with a note if bytes were dropped.
    pub fn text(&self) -> String {
        let c = self.inner.lock().expect("captured output lock");
        let (a, b) = c.tail.as_slices();
        let mut s = String::from_utf8_lossy(&[a, b].concat()).into_owned();
        if c.dropped > 0 {
            s = format!("[{} earlier bytes dropped] {s}", c.dropped);
        }
        s
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for CapturedOutput {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.push(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

/// Memory and table limits for one instance; remembers refused growth.
#[derive(Debug)]
pub struct Limits {
    memory_bytes: usize,
    /// Largest size a memory asked for beyond the cap, if any.
    pub refused_memory: Option<usize>,
    /// Peak linear memory size granted.
    pub peak_memory: usize,
}

impl Limits {
    /// A limiter capping linear memory at `memory_bytes`.
    pub fn new(memory_bytes: usize) -> Self {
        Self { memory_bytes, refused_memory: None, peak_memory: 0 }
    }

    /// The cap, bytes.
    pub fn memory_bytes(&self) -> usize {
        self.memory_bytes
    }
}

impl ResourceLimiter for Limits {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.refused_memory = Some(self.refused_memory.unwrap_or(0).max(desired));
            return Ok(false);
        }
        self.peak_memory = self.peak_memory.max(desired);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }

    fn instances(&self) -> usize {
        64
    }
    fn tables(&self) -> usize {
        64
    }
    fn memories(&self) -> usize {
        4
    }
}

/// Log lines a plugin may write per run before the rest are suppressed.
const LOG_LINES: u32 = 1000;
/// Bytes kept of one log line.
const LOG_LINE_BYTES: usize = 1024;

/// CPU time used by the calling thread so far (a syscall of about 0.5 us
/// here, so it is read only in the epoch callback, never per call).
pub fn thread_cpu() -> Duration {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own.
    #[allow(unsafe_code)]
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) } == 0;
    if ok { Duration::new(t.tv_sec as u64, t.tv_nsec as u32) } else { Duration::ZERO }
}

/// How long one plugin call may take. A call runs its first `deadline` of
/// wall time unchecked (a healthy call takes microseconds, and reading the
/// thread's CPU clock on every call would cost more than the call); from
/// then on it is interrupted once it has used another `deadline` of the
/// dispatcher thread's CPU time. A call slowed by a busy machine (little
/// CPU of its own) is not cut for that; one that spins is cut after about
/// twice `deadline`. `backstop` of wall time ends any call.
#[derive(Debug, Clone, Copy)]
pub struct CallBudget {
    /// When the call started.
    pub started: Instant,
    /// CPU time the call may use (after its first `deadline` of wall time).
    pub deadline: Duration,
    /// Wall time after which any call is interrupted.
    pub backstop: Duration,
    /// The thread's CPU clock when watching began.
    pub cpu_mark: Option<Duration>,
}

impl CallBudget {
    /// A budget for a call starting now.
    pub fn start(deadline: Duration, backstop: Duration) -> Self {
        Self::started_at(Instant::now(), deadline, backstop)
    }

    /// A budget for a call that started at `started` (one clock read serves
    /// the budget and the caller's own timing).
    pub fn started_at(started: Instant, deadline: Duration, backstop: Duration) -> Self {
        Self { started, deadline, backstop, cpu_mark: None }
    }

    /// Called from the epoch callback: whether to interrupt now.
    pub fn exceeded(&mut self) -> bool {
        let wall = self.started.elapsed();
        if wall >= self.backstop {
            return true;
        }
        if wall < self.deadline {
            // A ticker that fell behind and catches up never cuts a call short.
            return false;
        }
        match self.cpu_mark {
            None => {
                self.cpu_mark = Some(thread_cpu());
                false
            }
            Some(m) => thread_cpu().saturating_sub(m) >= self.deadline,
        }
    }

    /// CPU time measured since watching began.
    pub fn cpu_watched(&self) -> Option<Duration> {
        self.cpu_mark.map(|m| thread_cpu().saturating_sub(m))
    }
}

/// Everything a plugin's `Store` holds.
pub struct PluginState {
    /// Name used in logs and errors.
    pub name: String,
    wasi: WasiCtx,
    table: ResourceTable,
    /// Memory limiter.
    pub limits: Limits,
    /// Captured stdout.
    pub stdout: CapturedOutput,
    /// Captured stderr.
    pub stderr: CapturedOutput,
    clock: RunClock,
    rng: Rng,
    logged: u32,
    /// Prompts by request id, when the plugin was granted `prompt-text`
    /// (their routing text is made per call).
    pub prompts: Option<(Arc<Vec<sglab_core::workload::Prompt>>, sglab_core::workload::RoutingTexts)>,
    /// The current call's budget, checked by the epoch callback.
    pub call: Option<CallBudget>,
    /// With `--trace-decisions`: the lines logged during the current call,
    /// kept as the decision's reasons.
    pub reasons: Option<Vec<String>>,
    /// The hooks the plugin said it does not need (`host.skip-hook`).
    pub skipped: SkippedHooks,
}

/// A lifecycle hook a plugin can ask the host not to call (contract 0.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    OnArrival,
    OnDispatched,
    OnFirstToken,
    OnComplete,
    OnTick,
}

/// The hooks a plugin instance asked the host to skip.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SkippedHooks(u8);

impl SkippedHooks {
    /// Skips `hook` from now on.
    pub fn insert(&mut self, hook: Hook) {
        self.0 |= 1 << hook as u8;
    }

    /// Whether `hook` is skipped.
    pub fn contains(self, hook: Hook) -> bool {
        self.0 & (1 << hook as u8) != 0
    }
}

/// Sandbox settings for one instance.
#[derive(Debug, Clone, Copy)]
pub struct SandboxConfig {
    /// Linear-memory cap, bytes.
    pub memory_bytes: usize,
    /// Bytes of stdout and of stderr kept.
    pub output_bytes: usize,
    /// Seeds `random-u64` and WASI randomness.
    pub seed: u64,
    /// Distinguishes the plugins of one run in the seed.
    pub stream: u64,
}

impl PluginState {
    /// A sandbox with nothing granted: no preopened directories, no
    /// environment, no arguments, no network, stdin empty, output captured,
    /// clocks and randomness from the run.
    pub fn new(name: &str, cfg: SandboxConfig, clock: RunClock) -> Self {
        let stdout = CapturedOutput::new(cfg.output_bytes);
        let stderr = CapturedOutput::new(cfg.output_bytes);
        let mut wasi_rng = Rng::new(cfg.seed, 0x5EED_0000 + cfg.stream);
        let seed_lo = wasi_rng.next_u64() as u128;
        let seed_hi = wasi_rng.next_u64() as u128;
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .wall_clock(clock.clone())
            .monotonic_clock(clock.clone())
            .secure_random(SeededRandom(Rng::new(cfg.seed, 0x5EC0_0000 + cfg.stream)))
            .insecure_random(SeededRandom(Rng::new(cfg.seed, 0x1A5E_0000 + cfg.stream)))
            .insecure_random_seed(seed_hi << 64 | seed_lo)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            name: name.to_owned(),
            wasi,
            table: ResourceTable::new(),
            limits: Limits::new(cfg.memory_bytes),
            stdout,
            stderr,
            clock,
            rng: Rng::new(cfg.seed, 0x9106_0000 + cfg.stream),
            logged: 0,
            prompts: None,
            call: None,
            reasons: None,
            skipped: SkippedHooks::default(),
        }
    }

    /// `host.now-ns`.
    pub fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }

    /// `host.random-u64`.
    pub fn random_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// `host.log`: capped in count and length, into `tracing`.
    pub fn log(&mut self, level: tracing::Level, message: &str) {
        if let Some(r) = &mut self.reasons
            && r.len() < 64
        {
            let mut end = message.len().min(200);
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            r.push(message[..end].to_owned());
        }
        self.logged += 1;
        if self.logged > LOG_LINES {
            if self.logged == LOG_LINES + 1 {
                tracing::warn!(plugin = %self.name, "plugin wrote {LOG_LINES} log lines; further lines are suppressed");
            }
            return;
        }
        let mut end = message.len().min(LOG_LINE_BYTES);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let msg = &message[..end];
        match level {
            tracing::Level::ERROR => tracing::error!(plugin = %self.name, "{msg}"),
            tracing::Level::WARN => tracing::warn!(plugin = %self.name, "{msg}"),
            tracing::Level::INFO => tracing::info!(plugin = %self.name, "{msg}"),
            tracing::Level::DEBUG => tracing::debug!(plugin = %self.name, "{msg}"),
            tracing::Level::TRACE => tracing::trace!(plugin = %self.name, "{msg}"),
        }
    }

    /// `host.prompt-text`.
    pub fn prompt_text(&mut self, id: u64) -> Option<String> {
        let (prompts, texts) = self.prompts.as_mut()?;
        Some(texts.text(prompts.get(id as usize)?))
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captured_output_keeps_the_tail() {
        let out = CapturedOutput::new(8);
        out.push(b"hello ");
        out.push(b"world!");
        assert_eq!(out.text(), "[4 earlier bytes dropped] o world!");
    }

    #[test]
    fn limiter_refuses_and_remembers() {
        let mut l = Limits::new(1 << 20);
        assert!(l.memory_growing(0, 1 << 19, None).unwrap());
        assert!(!l.memory_growing(1 << 19, 1 << 30, None).unwrap());
        assert_eq!((l.refused_memory, l.peak_memory), (Some(1 << 30), 1 << 19));
    }
}
