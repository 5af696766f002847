//! The plugin runtime: one wasmtime `Engine` per process, an epoch ticker,
//! an on-disk cache of compiled components, and loading with version and
//! kind checks.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, Store, UpdateDeadline};

use super::builtin;
use super::instance::Limits;
use super::sandbox::{CallBudget, PluginState, RunClock, SandboxConfig};
use super::v0_1;
use super::wit::{self, PluginMeta, batcher_world, router_world};

/// The WIT package this host speaks, and the versions it accepts (0.2.x,
/// and 0.1.x through the adapter in `v0_1`).
pub const WIT_PACKAGE: &str = "sglab:strategy";
/// The current contract's version prefix (what the SDKs build against).
pub const WIT_VERSION: &str = "0.2";
/// The frozen contract versions this host still runs.
pub const WIT_OLDER: &str = "0.1";

/// Epoch ticker period; per-call deadlines are whole ticks.
pub const TICK: Duration = Duration::from_millis(1);

/// What kind of plugin a slot needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Exports `sglab:strategy/router`.
    Routing,
    /// Exports `sglab:strategy/batcher`.
    Batching,
}

impl Kind {
    /// `routing` / `batching`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Routing => "routing",
            Kind::Batching => "batching",
        }
    }

    fn interface(self) -> &'static str {
        match self {
            Kind::Routing => "router",
            Kind::Batching => "batcher",
        }
    }
}

/// Why a plugin could not be loaded. All are config-time errors.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Neither a built-in nor a readable file.
    #[error("no built-in plugin named {spec:?} and no file at {path} (built-ins: {builtins})")]
    NotFound {
        /// As written.
        spec: String,
        /// Where it was looked for.
        path: String,
        /// Known names.
        builtins: String,
    },
    /// Reading failed.
    #[error("cannot read {path}: {source}")]
    Read {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// A precompiled artifact was offered.
    #[error("{0} is a precompiled artifact; sglab only loads .wasm components and compiles them itself")]
    Precompiled(String),
    /// Not a valid component.
    #[error("{path} is not a valid WebAssembly component: {cause}")]
    Invalid {
        /// File.
        path: String,
        /// Cause.
        cause: String,
    },
    /// Built against another contract version.
    #[error(
        "{path} exports {found}, but this sglab supports {WIT_PACKAGE}@{WIT_VERSION}.x (and runs {WIT_OLDER}.x); rebuild the plugin against sglab-plugin-sdk {WIT_VERSION}"
    )]
    Version {
        /// File.
        path: String,
        /// The export found.
        found: String,
    },
    /// The wrong kind for the slot.
    #[error("{path} is not a {want} plugin (it exports: {found})")]
    Kind {
        /// File.
        path: String,
        /// Needed kind.
        want: &'static str,
        /// What it exports.
        found: String,
    },
    /// Instantiation, `info` or `create` failed.
    #[error("{path}: {cause}")]
    Start {
        /// File.
        path: String,
        /// Cause.
        cause: String,
    },
    /// `create` rejected the config (a typed error from the plugin).
    #[error("{0}")]
    Config(String),
}

/// The process-wide engine and its epoch ticker.
pub struct Runtime {
    engine: Engine,
    cache_dir: Option<PathBuf>,
}

/// A compiled, checked plugin, ready to instantiate.
pub struct Loaded {
    /// What was asked for (built-in name or path).
    pub source: String,
    /// sha256 of the `.wasm`, hex.
    pub sha256: String,
    /// Size of the `.wasm`, bytes.
    pub size: usize,
    /// The contract version it exports, e.g. `0.2.0`.
    pub wit_version: String,
    /// Its self-description.
    pub meta: PluginMeta,
    pub(super) pre: Pre,
}

pub(super) enum Pre {
    Router(router_world::RouterPluginPre<PluginState>),
    Batcher(batcher_world::BatcherPluginPre<PluginState>),
    /// Built against the frozen contract 0.1 (run through `v0_1`).
    RouterV0_1(v0_1::router_world::RouterPluginPre<PluginState>),
    /// Built against the frozen contract 0.1 (run through `v0_1`).
    BatcherV0_1(v0_1::batcher_world::BatcherPluginPre<PluginState>),
}

fn cache_root() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("SGLAB_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("sglab").join("plugins"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// sha256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

impl Runtime {
    /// The shared runtime (engine built and ticker started on first use).
    pub fn get() -> &'static Runtime {
        static RT: OnceLock<Runtime> = OnceLock::new();
        RT.get_or_init(|| Runtime::new().expect("wasmtime engine configuration is valid"))
    }

    fn new() -> wasmtime::Result<Self> {
        let mut cfg = Config::new();
        // Sync calls on the dispatcher thread; the async machinery only costs.
        cfg.concurrency_support(false);
        cfg.epoch_interruption(true);
        cfg.wasm_component_model(true);
        // A profiling aid (docs/performance.md): `perf` can then name the
        // plugin's functions. Off by default; it writes /tmp/perf-PID.map.
        if std::env::var_os("SGLAB_WASM_PERFMAP").is_some() {
            cfg.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&cfg)?;
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("sglab-epoch".into())
            .spawn(move || {
                // Ticks on an absolute schedule, so they do not drift.
                let start = std::time::Instant::now();
                let mut n: u32 = 0;
                while let Some(e) = weak.upgrade() {
                    e.increment_epoch();
                    drop(e);
                    n = n.wrapping_add(1);
                    let next = start + TICK * n;
                    std::thread::sleep(next.saturating_duration_since(std::time::Instant::now()));
                }
            })
            .expect("spawn epoch ticker");
        let cache_dir = cache_root().and_then(|dir| {
            let made = std::fs::DirBuilder::new().recursive(true).mode_private().create(&dir);
            match made {
                Ok(()) => Some(dir),
                Err(e) => {
                    tracing::warn!("plugin cache disabled: cannot create {}: {e}", dir.display());
                    None
                }
            }
        });
        Ok(Self { engine, cache_dir })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    fn compat_hash(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        env!("CARGO_PKG_VERSION").hash(&mut h);
        h.finish()
    }

    /// Compiles `bytes`, through the on-disk cache keyed by the wasm's sha256
    /// and the engine's compatibility hash.
    fn compile(&self, bytes: &[u8], sha: &str) -> wasmtime::Result<Component> {
        let Some(dir) = &self.cache_dir else { return Component::new(&self.engine, bytes) };
        let path = dir.join(format!("{sha}-{:016x}.cwasm", self.compat_hash()));
        if path.is_file() {
            // SAFETY: this file is in sglab's private cache directory, named by
            // the sha256 of the .wasm and this engine's compatibility hash, and
            // was written below by `Component::serialize` of a component that
            // sglab compiled itself from validated wasm. Artifacts from anywhere
            // else are never deserialized (see `Runtime::load`).
            #[allow(unsafe_code)]
            match unsafe { Component::deserialize_file(&self.engine, &path) } {
                Ok(c) => return Ok(c),
                Err(e) => tracing::warn!("recompiling: cached {} is unusable: {e}", path.display()),
            }
        }
        let component = Component::new(&self.engine, bytes)?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let written = component.serialize().map_err(std::io::Error::other).and_then(|ser| {
            std::fs::write(&tmp, ser)?;
            std::fs::rename(&tmp, &path)
        });
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!("cannot cache compiled plugin at {}: {e}", path.display());
        }
        Ok(component)
    }

    /// Loads a plugin for `kind` from a built-in name or a `.wasm` path
    /// (relative paths resolve against `base_dir`), under the default limits.
    pub fn load(&self, spec: &str, base_dir: &Path, kind: Kind) -> Result<Loaded, LoadError> {
        self.load_limited(spec, base_dir, kind, &Limits::default())
    }

    /// [`Runtime::load`], reading the plugin's `info()` under `limits` (its
    /// memory cap and output bytes; the startup budget of its deadlines).
    pub fn load_limited(&self, spec: &str, base_dir: &Path, kind: Kind, limits: &Limits) -> Result<Loaded, LoadError> {
        let (bytes, source) = match builtin::get(spec) {
            Some(b) => (b.to_vec(), format!("built-in:{spec}")),
            None => {
                let path = base_dir.join(spec);
                let shown = path.display().to_string();
                if !path.is_file() {
                    return Err(LoadError::NotFound {
                        spec: spec.to_owned(),
                        path: shown,
                        builtins: builtin::names().join(", "),
                    });
                }
                let bytes = std::fs::read(&path).map_err(|source| LoadError::Read { path: shown.clone(), source })?;
                (bytes, shown)
            }
        };
        // wasmtime's precompiled artifacts are native ELF objects; loading one
        // would run whatever machine code it holds. Refuse any ELF file.
        if bytes.starts_with(b"\x7fELF") || Engine::detect_precompiled(&bytes).is_some() {
            return Err(LoadError::Precompiled(source));
        }
        let sha256 = sha256_hex(&bytes);
        let component = self
            .compile(&bytes, &sha256)
            .map_err(|e| LoadError::Invalid { path: source.clone(), cause: format!("{e:#}") })?;
        let wit_version = self.check_exports(&component, kind, &source)?;
        let older = wit_version.starts_with(&format!("{WIT_OLDER}."));
        let mut linker = Linker::<PluginState>::new(&self.engine);
        let link = |linker: &mut Linker<PluginState>| -> wasmtime::Result<()> {
            wasmtime_wasi::p2::add_to_linker_sync(linker)?;
            if older {
                v0_1::router_world::RouterPlugin::add_to_linker::<PluginState, HasSelf<PluginState>>(linker, |s| s)
            } else {
                router_world::RouterPlugin::add_to_linker::<PluginState, HasSelf<PluginState>>(linker, |s| s)
            }
        };
        let start_err = |e: wasmtime::Error| LoadError::Start { path: source.clone(), cause: format!("{e:#}") };
        link(&mut linker).map_err(start_err)?;
        let pre = linker.instantiate_pre(&component).map_err(start_err)?;
        let pre = match (kind, older) {
            (Kind::Routing, false) => Pre::Router(router_world::RouterPluginPre::new(pre).map_err(start_err)?),
            (Kind::Batching, false) => Pre::Batcher(batcher_world::BatcherPluginPre::new(pre).map_err(start_err)?),
            (Kind::Routing, true) => Pre::RouterV0_1(v0_1::router_world::RouterPluginPre::new(pre).map_err(start_err)?),
            (Kind::Batching, true) => {
                Pre::BatcherV0_1(v0_1::batcher_world::BatcherPluginPre::new(pre).map_err(start_err)?)
            }
        };
        let meta = self.read_info(&pre, &source, limits)?;
        Ok(Loaded { source, sha256, size: bytes.len(), wit_version, meta, pre })
    }

    /// Finds the `sglab:strategy/<kind>@x.y.z` export; checks kind and version.
    fn check_exports(&self, component: &Component, kind: Kind, source: &str) -> Result<String, LoadError> {
        let ty = component.component_type();
        let exports: Vec<String> = ty.exports(&self.engine).map(|(name, _)| name.to_owned()).collect();
        let prefix = format!("{WIT_PACKAGE}/{}@", kind.interface());
        let Some(found) = exports.iter().find(|e| e.starts_with(&prefix)) else {
            let found = if exports.is_empty() { "nothing".to_owned() } else { exports.join(", ") };
            return Err(LoadError::Kind { path: source.to_owned(), want: kind.as_str(), found });
        };
        let version = &found[prefix.len()..];
        let compatible =
            [WIT_VERSION, WIT_OLDER].iter().any(|v| version.strip_prefix(v).is_some_and(|rest| rest.starts_with('.')));
        if !compatible {
            return Err(LoadError::Version { path: source.to_owned(), found: found.clone() });
        }
        Ok(version.to_owned())
    }

    fn read_info(&self, pre: &Pre, source: &str, limits: &Limits) -> Result<PluginMeta, LoadError> {
        let cfg = SandboxConfig {
            memory_bytes: limits.memory_bytes,
            output_bytes: limits.output_bytes,
            seed: limits.seed,
            stream: 0,
        };
        let mut store = self.store("info", cfg, RunClock::new());
        let (deadline, backstop) = limits.startup();
        store.data_mut().call = Some(CallBudget::start(deadline, backstop));
        store.set_epoch_deadline(deadline.as_nanos().div_ceil(TICK.as_nanos()).max(1) as u64);
        let err = |e: wasmtime::Error| {
            let mut cause = format!("info() failed: {e:#}");
            if cause.contains("exceeds memory limits") {
                let key = if matches!(pre, Pre::Router(_) | Pre::RouterV0_1(_)) { "routing" } else { "batching" };
                cause.push_str(&format!(
                    "; its memory cap is {} MiB: raise [{key}] memory_mib (a Python plugin needs at least 16)",
                    limits.memory_bytes >> 20
                ));
            }
            LoadError::Start { path: source.to_owned(), cause }
        };
        let s = &mut store;
        match pre {
            Pre::Router(p) => {
                p.instantiate(&mut *s).and_then(|b| b.sglab_strategy_router().call_info(s)).map(wit::plugin_meta)
            }
            Pre::Batcher(p) => {
                p.instantiate(&mut *s).and_then(|b| b.sglab_strategy_batcher().call_info(s)).map(wit::plugin_meta)
            }
            Pre::RouterV0_1(p) => {
                p.instantiate(&mut *s).and_then(|b| b.sglab_strategy_router().call_info(s)).map(v0_1::plugin_meta)
            }
            Pre::BatcherV0_1(p) => {
                p.instantiate(&mut *s).and_then(|b| b.sglab_strategy_batcher().call_info(s)).map(v0_1::plugin_meta)
            }
        }
        .map_err(err)
    }

    /// A fresh sandboxed store.
    pub(super) fn store(&self, name: &str, cfg: SandboxConfig, clock: RunClock) -> Store<PluginState> {
        let mut store = Store::new(&self.engine, PluginState::new(name, cfg, clock));
        store.limiter(|s| &mut s.limits);
        store.epoch_deadline_callback(|mut ctx| {
            let exceeded = ctx.data_mut().call.as_mut().is_none_or(|b| b.exceeded());
            Ok(if exceeded { UpdateDeadline::Interrupt } else { UpdateDeadline::Continue(1) })
        });
        store
    }
}

trait DirBuilderExt {
    fn mode_private(&mut self) -> &mut Self;
}

impl DirBuilderExt for std::fs::DirBuilder {
    fn mode_private(&mut self) -> &mut Self {
        use std::os::unix::fs::DirBuilderExt as _;
        self.mode(0o700)
    }
}
