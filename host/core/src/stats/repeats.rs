//! Mean and 95 % confidence interval over repeated runs of one point
//! (`sglab run --repeats N`): Student's t interval, as papers report
//! repeats (mean ± t(0.975, n-1) · s / √n).

/// Two-sided 95 % critical values of Student's t for 1..=30 degrees of
/// freedom (standard tables); past 30, the normal 1.96 (within 2 %).
const T_975: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120,
    2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
];

/// The mean and the half-width of its 95 % confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanCi {
    pub n: usize,
    pub mean: f64,
    /// Half-width: the interval is mean ± ci95 (0 for one value).
    pub ci95: f64,
}

/// Mean and 95 % CI of the finite values; `None` when there are none.
pub fn mean_ci95(values: &[f64]) -> Option<MeanCi> {
    let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    let n = v.len();
    if n == 0 {
        return None;
    }
    let mean = v.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return Some(MeanCi { n, mean, ci95: 0.0 });
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let t = T_975.get(n - 2).copied().unwrap_or(1.96);
    Some(MeanCi { n, mean, ci95: t * (var / n as f64).sqrt() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn student_t_interval() {
        // The c=64 TTFT p50 repeats: 204, 246, 225 ms.
        let r = mean_ci95(&[204.0, 246.0, 225.0]).unwrap();
        assert_eq!((r.n, r.mean), (3, 225.0));
        // s = 21, t(0.975, 2) = 4.303: 4.303 * 21 / sqrt(3) = 52.17.
        assert!((r.ci95 - 52.171).abs() < 1e-3, "{}", r.ci95);
        assert_eq!(mean_ci95(&[5.0, f64::NAN]), Some(MeanCi { n: 1, mean: 5.0, ci95: 0.0 }));
        assert_eq!(mean_ci95(&[]), None);
        // Many repeats: the normal value.
        let many: Vec<f64> = (0..100).map(|i| (i % 2) as f64).collect();
        let r = mean_ci95(&many).unwrap();
        assert!((r.ci95 - 1.96 * (0.5f64.powi(2) * 100.0 / 99.0).sqrt() / 10.0).abs() < 1e-12);
    }
}
