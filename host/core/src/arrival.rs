//! Arrival processes: when each request enters the client queue.
//!
//! Times are absolute offsets from the run start, so a late wake-up never
//! shifts the requests after it (no drift).

use crate::Nanos;
use crate::config::{Arrival, Process};
use crate::rng::Rng;

/// When requests arrive.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// Request i arrives at `times[i]` (non-decreasing).
    Timed(Vec<Nanos>),
    /// `users` requests start at 0; each finish lets the next request in.
    ClosedLoop {
        /// Concurrent users.
        users: u32,
    },
}

/// Builds the schedule for `n` requests.
pub fn schedule(a: &Arrival, n: usize, seed: u64) -> Schedule {
    match a.process {
        Process::Poisson => {
            let mut rng = Rng::new(seed, 4);
            let mut t = 0.0f64;
            Schedule::Timed(
                (0..n)
                    .map(|i| {
                        if i > 0 {
                            t += rng.exponential(a.rate);
                        }
                        (t * 1e9).round() as Nanos
                    })
                    .collect(),
            )
        }
        Process::Constant => Schedule::Timed((0..n).map(|i| (i as f64 / a.rate * 1e9).round() as Nanos).collect()),
        Process::Burst => Schedule::Timed(vec![0; n]),
        Process::ClosedLoop => Schedule::ClosedLoop { users: a.concurrency },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_rate_and_cv() {
        let a = Arrival { process: Process::Poisson, rate: 50.0, concurrency: 1 };
        let Schedule::Timed(t) = schedule(&a, 20_001, 5) else { panic!() };
        assert_eq!(t[0], 0);
        assert!(t.windows(2).all(|w| w[0] <= w[1]));
        let gaps: Vec<f64> = t.windows(2).map(|w| (w[1] - w[0]) as f64 / 1e9).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        let rate = 1.0 / mean;
        let cv = var.sqrt() / mean;
        assert!((rate - 50.0).abs() < 1.5, "rate {rate}");
        assert!((cv - 1.0).abs() < 0.03, "cv {cv}");
    }

    #[test]
    fn constant_and_burst() {
        let a = Arrival { process: Process::Constant, rate: 4.0, concurrency: 1 };
        assert_eq!(schedule(&a, 3, 0), Schedule::Timed(vec![0, 250_000_000, 500_000_000]));
        let b = Arrival { process: Process::Burst, ..a };
        assert_eq!(schedule(&b, 2, 0), Schedule::Timed(vec![0, 0]));
    }
}
