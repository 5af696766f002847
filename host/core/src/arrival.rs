//! Arrival processes: when each request enters the client queue.
//!
//! Times are absolute offsets from the run start, so a late wake-up never
//! shifts the requests after it (no drift).

use crate::Nanos;
use crate::config::{Arrival, Process};
use crate::rng::Rng;
use crate::workload::RequestSpec;

/// When requests arrive.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// Request i arrives at `times[i]` (non-decreasing).
    Timed(Vec<Nanos>),
    /// `users` requests start at 0 (or staggered over `ramp_ns`); each finish lets the next request in
    /// after `think_ns`.
    ClosedLoop {
        /// Concurrent users.
        users: u32,
        /// Pause after a finish before that user's next request.
        think_ns: Nanos,
        /// User `u`'s first request comes at `u * ramp_ns / users` (0: all at 0).
        ramp_ns: Nanos,
    },
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut Rng) -> f64 {
    let u1 = 1.0 - rng.next_f64();
    let u2 = rng.next_f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A Gamma(shape, 1) draw (Marsaglia–Tsang; shape < 1 through the
/// `Gamma(shape + 1) · U^(1/shape)` boost).
pub fn gamma(rng: &mut Rng, shape: f64) -> f64 {
    if shape < 1.0 {
        let u = 1.0 - rng.next_f64();
        return gamma(rng, shape + 1.0) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = normal(rng);
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u = 1.0 - rng.next_f64();
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

fn cumulative(n: usize, mut gap: impl FnMut() -> f64) -> Vec<Nanos> {
    let mut t = 0.0f64;
    (0..n)
        .map(|i| {
            if i > 0 {
                t += gap();
            }
            (t * 1e9).round() as Nanos
        })
        .collect()
}

/// Builds the schedule for `specs`. Fails only for `trace` when a request
/// has no timestamp.
pub fn schedule(a: &Arrival, specs: &[RequestSpec], seed: u64) -> Result<Schedule, String> {
    let n = specs.len();
    let mut rng = Rng::new(seed, 4);
    Ok(match a.process {
        Process::Poisson => Schedule::Timed(cumulative(n, || rng.exponential(a.rate))),
        Process::Gamma => {
            let scale = 1.0 / (a.rate * a.burstiness);
            Schedule::Timed(cumulative(n, || gamma(&mut rng, a.burstiness) * scale))
        }
        Process::Constant => Schedule::Timed((0..n).map(|i| (i as f64 / a.rate * 1e9).round() as Nanos).collect()),
        Process::Burst => Schedule::Timed(vec![0; n]),
        Process::ClosedLoop => Schedule::ClosedLoop {
            users: a.concurrency,
            think_ns: (a.think_time_s * 1e9).round() as Nanos,
            ramp_ns: (a.ramp_up_s * 1e9).round() as Nanos,
        },
        Process::Trace => {
            let mut times = Vec::with_capacity(n);
            for s in specs {
                let t = s.timestamp.ok_or_else(|| format!("request {} (dataset row) has no timestamp", s.id))?;
                times.push((t * a.time_scale * 1e9).round() as Nanos);
            }
            if times.windows(2).any(|w| w[1] < w[0]) {
                return Err("trace timestamps must not decrease (sort the file by timestamp)".into());
            }
            Schedule::Timed(times)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::Prompt;

    fn specs(n: usize) -> Vec<RequestSpec> {
        (0..n)
            .map(|i| RequestSpec {
                id: i as u64,
                prompt: Prompt::Ids(vec![1].into()),
                input_len: 1,
                output_len: 1,
                timestamp: Some(i as f64 * 0.25),
                session: None,
                priority: 0,
            })
            .collect()
    }

    fn rate_and_cv(t: &[Nanos]) -> (f64, f64) {
        let gaps: Vec<f64> = t.windows(2).map(|w| (w[1] - w[0]) as f64 / 1e9).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        (1.0 / mean, var.sqrt() / mean)
    }

    fn arrival(process: Process, rate: f64, burstiness: f64) -> Arrival {
        Arrival { process, rate, burstiness, ..Arrival::default() }
    }

    #[test]
    fn poisson_rate_and_cv() {
        let Schedule::Timed(t) = schedule(&arrival(Process::Poisson, 50.0, 1.0), &specs(20_001), 5).unwrap() else {
            panic!()
        };
        assert_eq!(t[0], 0);
        assert!(t.windows(2).all(|w| w[0] <= w[1]));
        let (rate, cv) = rate_and_cv(&t);
        assert!((rate - 50.0).abs() < 1.5, "rate {rate}");
        assert!((cv - 1.0).abs() < 0.03, "cv {cv}");
    }

    #[test]
    fn gamma_rate_and_cv_follow_burstiness() {
        for (k, want_cv) in [(0.25, 2.0), (1.0, 1.0), (4.0, 0.5)] {
            let Schedule::Timed(t) = schedule(&arrival(Process::Gamma, 20.0, k), &specs(40_001), 11).unwrap() else {
                panic!()
            };
            let (rate, cv) = rate_and_cv(&t);
            assert!((rate - 20.0).abs() / 20.0 < 0.04, "k={k}: rate {rate}");
            assert!((cv - want_cv).abs() / want_cv < 0.05, "k={k}: cv {cv}, want {want_cv}");
        }
    }

    #[test]
    fn constant_burst_closed_loop_and_trace() {
        let a = arrival(Process::Constant, 4.0, 1.0);
        assert_eq!(schedule(&a, &specs(3), 0).unwrap(), Schedule::Timed(vec![0, 250_000_000, 500_000_000]));
        let b = arrival(Process::Burst, 1.0, 1.0);
        assert_eq!(schedule(&b, &specs(2), 0).unwrap(), Schedule::Timed(vec![0, 0]));
        let c = Arrival { process: Process::ClosedLoop, concurrency: 3, think_time_s: 0.5, ..Arrival::default() };
        assert_eq!(
            schedule(&c, &specs(2), 0).unwrap(),
            Schedule::ClosedLoop { users: 3, think_ns: 500_000_000, ramp_ns: 0 }
        );
        // Trace: timestamps replayed exactly, scaled.
        let t = Arrival { process: Process::Trace, time_scale: 2.0, ..Arrival::default() };
        assert_eq!(schedule(&t, &specs(3), 0).unwrap(), Schedule::Timed(vec![0, 500_000_000, 1_000_000_000]));
        let mut missing = specs(2);
        missing[1].timestamp = None;
        assert!(schedule(&t, &missing, 0).unwrap_err().contains("request 1"));
    }
}
