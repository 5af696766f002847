//! SVG charts (plotters): latency CDFs and time series, shared by
//! `sglab report` and `sglab compare`.

use std::path::Path;

use anyhow::Context as _;
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
    draw(path, title, (x_label, y_label), (x_max, y_max), series, true)
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
    let root = SVGBackend::new(path, (W, H)).into_drawing_area();
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
    root.present().map_err(err).with_context(|| format!("writing {}", path.display()))
}

/// A step function as points for a line chart (each value held until the next time).
pub fn steps(points: impl Iterator<Item = (f64, f64)>) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    for (t, v) in points {
        if let Some(&(_, prev)) = out.last() {
            out.push((t, prev));
        }
        out.push((t, v));
    }
    out
}
