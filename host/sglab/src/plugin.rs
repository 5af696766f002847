//! WebAssembly strategy plugins: loading, sandboxing and calling them.
//!
//! - [`runtime`]: the engine, epoch ticker, compiled-component cache, and
//!   loading with version/kind checks.
//! - [`sandbox`]: what a plugin's store holds (deny-all WASI, captured output,
//!   run clock, seeded randomness, memory limiter).
//! - [`instance`]: the core's `RoutePolicy`/`BatchPolicy` over components.
//! - [`wit`]: generated bindings and every WIT <-> core conversion.
//! - [`v0_1`]: the same for the frozen contract 0.1, which still runs.
//! - [`builtin`]: first-party plugins embedded at build time.

pub mod builtin;
pub mod instance;
pub mod runtime;
pub mod sandbox;
pub mod trace;
pub mod v0_1;
pub mod wit;

pub use instance::{Limits, WasmBatcher, WasmRouter};
pub use runtime::{Kind, LoadError, Loaded, Runtime};
pub use sandbox::RunClock;
