//! SVG charts (plotters): latency CDFs and time series, shared by
//! `sglab report` and `sglab compare`.

use std::path::Path;

use plotters::prelude::*;

const W: u32 = 760;
const H: u32 = 420;
const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Named lines of (x, y) points.
pub type Series = Vec<(String, Vec<(f64, f64)>)>;

fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// A CDF of each series (values in the unit of `x_label`).
pub fn cdf(path: &Path, title: &str, x_label: &str, series: &[(String, Vec<f64>)]) -> anyhow::Result<()> {
    let mut sorted: Vec<(String, Vec<f64>)> = series
        .iter()
        .map(|(n, v)| {
            let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
            v.sort_by(f64::total_cmp);
            (n.clone(), v)
        })
        .collect();
    sorted.retain(|(_, v)| !v.is_empty());
    let max = sorted.iter().filter_map(|(_, v)| v.last().copied()).fold(0.0f64, f64::max).max(1e-9) * 1.05;
    let legend = sorted.len() > 1 || sorted.first().is_some_and(|(n, _)| !n.is_empty());
    let points: Series = sorted
        .into_iter()
        .map(|(name, v)| {
            let n = v.len() as f64;
            (name, v.into_iter().enumerate().map(|(k, x)| (x, (k + 1) as f64 / n)).collect())
        })
        .collect();
    draw(path, title, (x_label, "fraction of requests"), (max, 1.0), &points, legend)
}

/// Time series (x: seconds since the run start).
pub fn lines(path: &Path, title: &str, y_label: &str, series: &[(String, Vec<(f64, f64)>)]) -> anyhow::Result<()> {
    xy(path, title, "time since run start (s)", y_label, series)
}

/// Lines with points over any x axis starting at 0.
pub fn xy(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> anyhow::Result<()> {
    let x_max = series.iter().flat_map(|(_, v)| v.iter().map(|p| p.0)).fold(0.0f64, f64::max).max(1e-9);
    let y_max = series.iter().flat_map(|(_, v)| v.iter().map(|p| p.1)).fold(0.0f64, f64::max).max(1.0) * 1.1;
    // A legend only tells lines apart: one line needs none (it would cover data).
    draw(path, title, (x_label, y_label), (x_max, y_max), series, series.len() > 1)
}

/// One line chart over [0, max.0] x [0, max.1], a line per series, with a
/// legend when `legend`.
fn draw(
    path: &Path,
    title: &str,
    (x_label, y_label): (&str, &str),
    (x_max, y_max): (f64, f64),
    series: &[(String, Vec<(f64, f64)>)],
    legend: bool,
) -> anyhow::Result<()> {
    // Drawn in memory, then written whole: a full disk leaves no half SVG.
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(err)?;
        chart.configure_mesh().x_desc(x_label).y_desc(y_label).draw().map_err(err)?;
        for (i, (name, v)) in series.iter().enumerate() {
            let c = color(i);
            chart
                .draw_series(LineSeries::new(v.iter().copied(), c.stroke_width(2)))
                .map_err(err)?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        }
        if legend {
            chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    crate::results::write_atomic(path, svg.as_bytes())
}

/// Most points a step line keeps: far more than a chart's pixels, and a
/// bound on plot and report size however many requests a run has.
const MAX_STEP_POINTS: usize = 8_000;

/// A step function as points for a line chart (each value held until the
/// next time). Past [`MAX_STEP_POINTS`], each of 2,000 equal time slices
/// keeps its first, lowest, highest and last point, so every peak and dip
/// still shows.
pub fn steps(points: impl Iterator<Item = (f64, f64)>) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    for (t, v) in points {
        if let Some(&(_, prev)) = out.last() {
            out.push((t, prev));
        }
        out.push((t, v));
    }
    if out.len() <= MAX_STEP_POINTS {
        return out;
    }
    let (t0, t1) = (out[0].0, out[out.len() - 1].0);
    let slices = MAX_STEP_POINTS / 4;
    let width = ((t1 - t0) / slices as f64).max(f64::MIN_POSITIVE);
    let mut kept = Vec::with_capacity(MAX_STEP_POINTS);
    let mut i = 0;
    while i < out.len() {
        let slice = ((out[i].0 - t0) / width) as usize;
        let mut j = i;
        let (mut lo, mut hi) = (i, i);
        while j < out.len() && ((out[j].0 - t0) / width) as usize == slice {
            if out[j].1 < out[lo].1 {
                lo = j;
            }
            if out[j].1 > out[hi].1 {
                hi = j;
            }
            j += 1;
        }
        let mut idx = [i, lo, hi, j - 1];
        idx.sort_unstable();
        for (k, &p) in idx.iter().enumerate() {
            if k == 0 || p != idx[k - 1] {
                kept.push(out[p]);
            }
        }
        i = j;
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::steps;

    #[test]
    fn long_step_lines_keep_every_extreme_within_a_bound() {
        // 100,000 changes: a sawtooth 0..=9 with one spike to 500.
        let pts = (0..100_000).map(|i| (i as f64 * 0.001, if i == 54_321 { 500.0 } else { (i % 10) as f64 }));
        let kept = steps(pts);
        assert!(kept.len() <= 8_000, "{} points", kept.len());
        assert!(kept.iter().any(|&(_, v)| v == 500.0), "the spike survives");
        assert_eq!(kept.iter().map(|p| p.1).fold(f64::MAX, f64::min), 0.0);
        assert_eq!((kept[0], *kept.last().unwrap()), ((0.0, 0.0), (99.999, 9.0)));
        assert!(kept.windows(2).all(|w| w[0].0 <= w[1].0), "time order kept");
        // Short lines are untouched: a step holds each value until the next time.
        assert_eq!(steps([(0.0, 1.0), (2.0, 3.0)].into_iter()), [(0.0, 1.0), (2.0, 1.0), (2.0, 3.0)]);
    }
}
