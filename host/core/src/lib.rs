//! sglab's sans-IO core: the domain logic with no tokio, hyper or wasmtime.
//!
//! Time is always passed in as data (nanoseconds since the run started), so
//! the same code runs under the live driver and under a virtual clock.
//!
//! - [`config`]: the experiment file's schema and validation.
//! - [`workload`] and [`arrival`]: what is sent and when.
//! - [`policy`]: the strategy traits the dispatcher calls (the host implements
//!   them over WebAssembly plugins).
//! - [`dispatch`]: the client queue and per-node bookkeeping state machine.
//! - [`session`]: arrivals, stop rules, dispatcher and records: the client
//!   session both drivers run.
//! - [`record`] and [`stats`]: per-request records and their summary;
//!   [`run_summary`]: `summary.json`, typed.
//! - [`timeline`]: exact queued/running/decoding step functions over time.
//! - [`sse`]: server-sent-event framing.
//! - [`sim`]: the simulated server's engine.
//! - [`vtime`]: the discrete-event loop of virtual-time runs.

#![forbid(unsafe_code)]

pub mod arrival;
pub mod config;
pub mod dispatch;
pub mod fasthash;
pub mod live;
pub mod policy;
pub mod record;
pub mod rng;
pub mod run_summary;
pub mod session;
pub mod sim;
pub mod sse;
pub mod stats;
pub mod timefmt;
pub mod timeline;
pub mod vtime;
pub mod workload;

/// Nanoseconds since the run started (monotonic or virtual clock).
pub type Nanos = u64;

/// Converts run nanoseconds to the seconds used in every output file.
pub fn secs(ns: Nanos) -> f64 {
    // Below 2^63 the signed conversion is one instruction and gives the
    // same value (both round the same integer to the nearest f64); the
    // unsigned one is a branchy sequence on x86-64, and this runs for
    // every token of every record.
    let s = if ns <= i64::MAX as u64 { ns as i64 as f64 } else { ns as f64 };
    s / 1e9
}

#[cfg(test)]
mod tests {
    #[test]
    fn secs_is_the_unsigned_conversion_divided() {
        let mut cases = vec![0, 1, (1 << 53) + 1, (1 << 63) - 1, 1 << 63, (1 << 63) + 1025, u64::MAX];
        let mut rng = crate::rng::Rng::new(2, 0);
        cases.extend((0..10_000).map(|_| rng.next_u64() >> (rng.next_u64() % 64)));
        for ns in cases {
            assert_eq!(super::secs(ns).to_bits(), (ns as f64 / 1e9).to_bits(), "{ns}");
        }
    }
}
