//! Charts (plotters) for `sglab report`, `compare` and sweeps. Each chart
//! is written twice: `NAME.svg` (embedded in the HTML reports) and
//! `NAME.png` at twice the size, for papers and slides. Text is drawn in
//! DejaVu Sans, shipped in the binary, so a PNG needs no system font.
//!
//! Layout rules: the legend sits right of the plot area, never on the
//! data; one quantity per axis; counts get integer ticks; axes fit the
//! data (a CDF starts at its smallest value), with a log option.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// SVG size in pixels; the PNG is [`PNG_SCALE`] times larger.
const W: u32 = 960;
const H: u32 = 540;
const PNG_SCALE: u32 = 2;
const FONT: &str = "sans-serif";
const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// Named lines of (x, y) points.
pub type Series = Vec<(String, Vec<(f64, f64)>)>;

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// A line through the points (pass [`steps`] points for a step line).
    Line,
    /// A line with a marker on every point (sweep curves: few points).
    Markers,
}

/// An axis scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scale {
    #[default]
    Linear,
    /// Log 10; points at or below 0 are left out.
    Log,
}

/// A line chart.
#[derive(Debug, Clone)]
pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: &'a [(String, Vec<(f64, f64)>)],
    pub style: Style,
    pub x_scale: Scale,
    /// The y scale (log for latency against rate; the y axis then fits the data).
    pub y_scale: Scale,
    /// The x axis starts near the smallest x (a CDF, a rate sweep) rather
    /// than at 0 (time since the run start).
    pub x_fit: bool,
    /// The y values count whole things (requests): integer ticks.
    pub y_integer: bool,
    /// A fixed top of the y axis (a CDF: 1).
    pub y_max: Option<f64>,
}

/// Where a chart put its parts, in SVG pixels (for the geometry tests).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Layout {
    /// The plot area: (left, top, right, bottom).
    pub plot: (i32, i32, i32, i32),
    /// The legend box, when there is one.
    pub legend: Option<(i32, i32, i32, i32)>,
}

fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Reason: a font file compiled into the binary; it parses, or no chart can be drawn.
        if plotters::style::register_font(FONT, FontStyle::Normal, include_bytes!("../assets/DejaVuSans.ttf")).is_err()
        {
            tracing::error!("the bundled font does not parse: charts will have no text");
        }
    });
}

/// A tick label: the shortest of a few decimals, no float noise.
pub fn tick(v: f64) -> String {
    let s = if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    };
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_owned() } else { s };
    if s == "-0" { "0".into() } else { s }
}

/// Points of an empirical CDF for each series (non-finite values dropped).
pub fn cdf_points(series: &[(String, Vec<f64>)]) -> Series {
    series
        .iter()
        .filter_map(|(name, v)| {
            let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
            v.sort_by(f64::total_cmp);
            let n = v.len() as f64;
            (!v.is_empty())
                .then(|| (name.clone(), v.into_iter().enumerate().map(|(k, x)| (x, (k + 1) as f64 / n)).collect()))
        })
        .collect()
}

/// A CDF chart of each series (values in the unit of `x_label`).
pub fn cdf(
    path: &Path,
    title: &str,
    x_label: &str,
    series: &[(String, Vec<f64>)],
    x_scale: Scale,
) -> anyhow::Result<()> {
    let points = cdf_points(series);
    Chart {
        title,
        x_label,
        y_label: "fraction of requests",
        series: &points,
        style: Style::Line,
        x_scale,
        y_scale: Scale::Linear,
        x_fit: true,
        y_integer: false,
        y_max: Some(1.0),
    }
    .save(path)
    .map(drop)
}

impl Chart<'_> {
    /// A time series chart (x: seconds since the run start, from 0).
    pub fn over_time<'a>(title: &'a str, y_label: &'a str, series: &'a [(String, Vec<(f64, f64)>)]) -> Chart<'a> {
        Chart {
            title,
            x_label: "time since run start (s)",
            y_label,
            series,
            style: Style::Line,
            x_scale: Scale::Linear,
            y_scale: Scale::Linear,
            x_fit: false,
            y_integer: false,
            y_max: None,
        }
    }

    /// Writes `path` (an `.svg`) and the PNG beside it; returns the SVG's layout.
    pub fn save(&self, path: &Path) -> anyhow::Result<Layout> {
        write_svg_and_png(self, path, H)
    }
}

impl Render for Chart<'_> {
    fn render<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, s: i32) -> anyhow::Result<Layout> {
        root.fill(&WHITE).map_err(err)?;
        let series: Series = self
            .series
            .iter()
            .map(|(n, v)| {
                let keep = |p: &&(f64, f64)| {
                    p.0.is_finite()
                        && p.1.is_finite()
                        && (self.x_scale == Scale::Linear || p.0 > 0.0)
                        && (self.y_scale == Scale::Linear || p.1 > 0.0)
                };
                (n.clone(), v.iter().filter(keep).copied().collect::<Vec<_>>())
            })
            .filter(|(_, v)| !v.is_empty())
            .collect();
        let xs = || series.iter().flat_map(|(_, v)| v.iter().map(|p| p.0));
        let (x_min, x_max) = (xs().fold(f64::INFINITY, f64::min), xs().fold(f64::NEG_INFINITY, f64::max));
        let (x_min, x_max) = if x_min.is_finite() { (x_min, x_max) } else { (1.0, 2.0) };
        let (x_lo, x_hi) = match (self.x_scale, self.x_fit) {
            (Scale::Log, _) => (x_min / 1.15, x_max * 1.15),
            (Scale::Linear, true) => {
                let pad = ((x_max - x_min) * 0.04).max(x_max.abs() * 0.01).max(1e-9);
                ((x_min - pad).max(if x_min >= 0.0 { 0.0 } else { f64::NEG_INFINITY }), x_max + pad)
            }
            (Scale::Linear, false) => (0.0, x_max.max(1e-9)),
        };
        let y_top = series.iter().flat_map(|(_, v)| v.iter().map(|p| p.1)).fold(0.0f64, f64::max);
        let y_hi = match (self.y_max, self.y_integer) {
            (Some(m), _) => m * 1.02,
            (None, true) => (y_top * 1.08).ceil().max(1.0),
            (None, false) => (y_top * 1.08).max(1e-9),
        };
        // Integer axes: at most one tick per whole number, so no "0.5 requests".
        let y_low = series.iter().flat_map(|(_, v)| v.iter().map(|p| p.1)).fold(f64::INFINITY, f64::min);
        let y_ticks = if self.y_integer { (y_hi as usize + 1).min(10) } else { 10 };
        let names: Vec<&str> = series.iter().map(|(n, _)| n.as_str()).collect();
        let legend = names.len() > 1 || names.first().is_some_and(|n| !n.is_empty());
        let area = root.margin(12 * s, 0, 0, 0).titled(self.title, (FONT, 22 * s)).map_err(err)?;
        let (plot_area, legend_area, labels) = split_legend(&area, &names, legend, s);
        let mut b = ChartBuilder::on(&plot_area);
        b.margin(10 * s).margin_right(18 * s).x_label_area_size(52 * s).y_label_area_size(76 * s);
        let integer = self.y_integer;
        let y_fmt = move |v: &f64| if !integer || v.fract().abs() < 1e-9 { tick(*v) } else { String::new() };
        let legend = (legend_area, labels.as_slice());
        let y_log = || (y_low.min(y_hi) / 1.15)..(y_top * 1.15).max(y_low * 1.3);
        // One arm per axis-scale pair: plotters' log axes are their own types.
        match (self.x_scale, self.y_scale) {
            (Scale::Linear, Scale::Linear) => {
                let chart = b.build_cartesian_2d(x_lo..x_hi, 0f64..y_hi).map_err(err)?;
                self.finish(chart, &series, y_ticks, &y_fmt, legend, s)
            }
            (Scale::Log, Scale::Linear) => {
                let chart = b.build_cartesian_2d((x_lo..x_hi).log_scale(), 0f64..y_hi).map_err(err)?;
                self.finish(chart, &series, y_ticks, &y_fmt, legend, s)
            }
            (Scale::Linear, Scale::Log) => {
                let chart = b.build_cartesian_2d(x_lo..x_hi, y_log().log_scale()).map_err(err)?;
                self.finish(chart, &series, 12, &|v| tick(*v), legend, s)
            }
            (Scale::Log, Scale::Log) => {
                let chart = b.build_cartesian_2d((x_lo..x_hi).log_scale(), y_log().log_scale()).map_err(err)?;
                self.finish(chart, &series, 12, &|v| tick(*v), legend, s)
            }
        }
    }
}

impl Chart<'_> {
    #[allow(clippy::type_complexity)]
    fn finish<DB, X, Y>(
        &self,
        mut chart: ChartContext<'_, DB, Cartesian2d<X, Y>>,
        series: &Series,
        y_ticks: usize,
        y_fmt: &dyn Fn(&f64) -> String,
        (legend_area, labels): (Option<DrawingArea<DB, Shift>>, &[String]),
        s: i32,
    ) -> anyhow::Result<Layout>
    where
        DB: DrawingBackend,
        X: Ranged<ValueType = f64> + ValueFormatter<f64>,
        Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        chart
            .configure_mesh()
            .x_desc(self.x_label)
            .y_desc(self.y_label)
            .axis_desc_style((FONT, 17 * s))
            .label_style((FONT, 15 * s))
            .x_labels(if self.x_scale == Scale::Log { 12 } else { 10 })
            .y_labels(y_ticks)
            .x_label_formatter(&|v| tick(*v))
            .y_label_formatter(y_fmt)
            .bold_line_style(RGBColor(225, 225, 225).stroke_width(s as u32))
            .light_line_style(TRANSPARENT)
            .axis_style(BLACK.stroke_width(s as u32))
            .draw()
            .map_err(err)?;
        for (i, (_, v)) in series.iter().enumerate() {
            let c = color(i);
            let style = c.stroke_width(2 * s as u32);
            if s == 1 {
                chart.draw_series(LineSeries::new(v.iter().copied(), style)).map_err(err)?;
            } else {
                // Bitmap: one polygon per segment. A wide path's joins go
                // wrong where a step line turns back within a pixel (thin
                // dotted spikes); lone segments have no joins.
                let segments = v.windows(2).filter(|w| w[0] != w[1]).map(|w| PathElement::new(vec![w[0], w[1]], style));
                chart.draw_series(segments).map_err(err)?;
            }
            if self.style == Style::Markers {
                chart.draw_series(v.iter().map(|&p| Circle::new(p, 4 * s, c.filled()))).map_err(err)?;
            }
        }
        let (xr, yr) = chart.plotting_area().get_pixel_range();
        let plot = (xr.start / s, yr.start / s, xr.end / s, yr.end / s);
        let legend = match legend_area {
            Some(a) => Some(draw_legend(&a, labels, yr.start, self.style == Style::Markers, s)?),
            None => None,
        };
        Ok(Layout { plot, legend: legend.map(|(l, t, r, b)| (l / s, t / s, r / s, b / s)) })
    }
}

/// Splits off a legend column right of the plot, as wide as the longest
/// label needs (at most a third of the chart; longer labels are cut with
/// an ellipsis). Returns the plot area, the legend area and the labels.
#[allow(clippy::type_complexity)]
fn split_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    names: &[&str],
    legend: bool,
    s: i32,
) -> (DrawingArea<DB, Shift>, Option<DrawingArea<DB, Shift>>, Vec<String>) {
    if !legend {
        return (area.clone(), None, Vec::new());
    }
    let font = TextStyle::from((FONT, 15 * s).into_font());
    let width = |t: &str| area.estimate_text_size(t, &font).map(|(w, _)| w as i32).unwrap_or(8 * s * t.len() as i32);
    let max_text = (W as i32 * s) / 3 - 44 * s;
    let labels: Vec<String> = names.iter().map(|n| ellipsize(&width, n, max_text)).collect();
    let text_w = labels.iter().map(|l| width(l)).max().unwrap_or(0);
    let (w, _) = area.dim_in_pixel();
    let legend_w = (text_w + 52 * s).min(w as i32 / 2);
    let (left, right) = area.split_horizontally(w as i32 - legend_w);
    (left, Some(right), labels)
}

/// `t` cut with an ellipsis to at most `max` pixels wide.
fn ellipsize(width: &dyn Fn(&str) -> i32, t: &str, max: i32) -> String {
    let mut t = t.to_owned();
    while width(&t) > max && t.chars().count() > 4 {
        t.pop();
        while t.ends_with('…') {
            t.pop();
        }
        t.pop();
        t.push('…');
    }
    t
}

/// Draws the legend rows from `top` down; returns its box in root pixels.
fn draw_legend<DB: DrawingBackend>(
    a: &DrawingArea<DB, Shift>,
    labels: &[String],
    top: i32,
    markers: bool,
    s: i32,
) -> anyhow::Result<(i32, i32, i32, i32)> {
    let (x0, y0) = (a.get_base_pixel().0, a.get_base_pixel().1);
    let top = top - y0 + 4 * s;
    let row = 24 * s;
    let (w, h) = a.dim_in_pixel();
    let fits = (((h as i32 - top) / row).max(1)) as usize;
    let shown = if labels.len() > fits { fits - 1 } else { labels.len() };
    let style = TextStyle::from((FONT, 15 * s).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    for (i, label) in labels.iter().take(shown).enumerate() {
        let c = color(i);
        let y = top + i as i32 * row + row / 2;
        a.draw(&PathElement::new(vec![(6 * s, y), (30 * s, y)], c.stroke_width(3 * s as u32))).map_err(err)?;
        if markers {
            a.draw(&Circle::new((18 * s, y), 4 * s, c.filled())).map_err(err)?;
        }
        a.draw(&Text::new(label.as_str(), (38 * s, y), style.clone())).map_err(err)?;
    }
    if shown < labels.len() {
        let y = top + shown as i32 * row + row / 2;
        let more = format!("+{} more (see CSV)", labels.len() - shown);
        a.draw(&Text::new(more, (38 * s, y), style.clone())).map_err(err)?;
    }
    let rows = shown + usize::from(shown < labels.len());
    Ok((x0, y0 + top, x0 + w as i32, y0 + top + rows as i32 * row))
}

/// Horizontal bars, one per labelled value (labels on the left, so long
/// ones stay readable); bar `i` has series colour `i`, as in the CDFs.
pub fn bars(path: &Path, title: &str, value_label: &str, items: &[(String, f64)]) -> anyhow::Result<Layout> {
    // As tall as the bars need: about 64 px a bar.
    let h_svg = (150 + 64 * items.len() as u32).clamp(300, 1400);
    write_svg_and_png(&Bars { title, value_label, items }, path, h_svg)
}

struct Bars<'a> {
    title: &'a str,
    value_label: &'a str,
    items: &'a [(String, f64)],
}

impl Render for Bars<'_> {
    fn render<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, s: i32) -> anyhow::Result<Layout> {
        render_bars(root, self.title, self.value_label, self.items, s)
    }
}

/// A chart drawn at scale `s` (1: the SVG; [`PNG_SCALE`]: the PNG).
trait Render {
    fn render<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, s: i32) -> anyhow::Result<Layout>;
}

/// Draws `chart` as `path` (an SVG, `W` x `h`) and as the PNG beside it at
/// [`PNG_SCALE`]; returns the SVG's layout. Each is drawn in memory, then
/// written whole: a full disk leaves no half file.
fn write_svg_and_png(chart: &impl Render, path: &Path, h: u32) -> anyhow::Result<Layout> {
    register_font();
    let mut svg = String::new();
    let layout = {
        let root = SVGBackend::with_string(&mut svg, (W, h)).into_drawing_area();
        let layout = chart.render(&root, 1)?;
        root.present().map_err(err)?;
        layout
    };
    crate::results::write_atomic(path, svg.as_bytes())?;
    let (pw, ph) = (W * PNG_SCALE, h * PNG_SCALE);
    let mut px = vec![0u8; (pw * ph * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut px, (pw, ph)).into_drawing_area();
        chart.render(&root, PNG_SCALE as i32)?;
        root.present().map_err(err)?;
    }
    write_png(&png_of(path), &px, (pw, ph)).map(|()| layout)
}

fn render_bars<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    value_label: &str,
    items: &[(String, f64)],
    s: i32,
) -> anyhow::Result<Layout> {
    root.fill(&WHITE).map_err(err)?;
    let area = root.margin(12 * s, 0, 0, 0).titled(title, (FONT, 22 * s)).map_err(err)?;
    let font = TextStyle::from((FONT, 15 * s).into_font());
    let width = |t: &str| area.estimate_text_size(t, &font).map(|(w, _)| w as i32).unwrap_or(8 * s * t.len() as i32);
    let labels: Vec<String> = items.iter().map(|(l, _)| ellipsize(&width, l, (W as i32 * s) * 2 / 5)).collect();
    let label_w = labels.iter().map(|l| width(l)).max().unwrap_or(0).max(40 * s);
    let n = items.len().max(1) as u32;
    let top = items.iter().map(|i| i.1).filter(|v| v.is_finite()).fold(0.0f64, f64::max).max(1e-9) * 1.15;
    let mut chart = ChartBuilder::on(&area)
        .margin(10 * s)
        .margin_right(24 * s)
        .x_label_area_size(52 * s)
        .y_label_area_size(label_w + 16 * s)
        // Item i is the i-th bar from the top, centred on n - i - 0.5.
        .build_cartesian_2d(0f64..top, 0f64..n as f64)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc(value_label)
        .axis_desc_style((FONT, 17 * s))
        .label_style((FONT, 15 * s))
        .x_label_formatter(&|v| tick(*v))
        // The category labels are drawn below, one per bar, not as ticks.
        .y_labels(0)
        .bold_line_style(RGBColor(225, 225, 225).stroke_width(s as u32))
        .light_line_style(TRANSPARENT)
        .axis_style(BLACK.stroke_width(s as u32))
        .draw()
        .map_err(err)?;
    let value_style = TextStyle::from((FONT, 14 * s).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    let label_style = font.pos(Pos::new(HPos::Right, VPos::Center));
    for (i, (_, v)) in items.iter().enumerate().filter(|(_, (_, v))| v.is_finite()) {
        let y = (n as usize - i) as f64;
        let bar = Rectangle::new([(0.0, y - 0.85), (*v, y - 0.15)], color(i).filled());
        chart.draw_series(std::iter::once(bar)).map_err(err)?;
        let at = chart.backend_coord(&(*v, y - 0.5));
        let left = chart.backend_coord(&(0.0, y - 0.5));
        root.draw(&Text::new(labels[i].as_str(), (left.0 - 8 * s, left.1), label_style.clone())).map_err(err)?;
        root.draw(&Text::new(tick(*v), (at.0 + 6 * s, at.1), value_style.clone())).map_err(err)?;
    }
    let (xr, yr) = chart.plotting_area().get_pixel_range();
    Ok(Layout { plot: (xr.start / s, yr.start / s, xr.end / s, yr.end / s), legend: None })
}

fn write_png(path: &Path, px: &[u8], (w, h): (u32, u32)) -> anyhow::Result<()> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Fast);
    let mut writer = enc.write_header().map_err(err)?;
    writer.write_image_data(px).map_err(err)?;
    writer.finish().map_err(err)?;
    crate::results::write_atomic(path, &out)
}

/// The PNG beside an SVG chart.
pub fn png_of(svg: &Path) -> PathBuf {
    svg.with_extension("png")
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
mod tests;
