//! One test per chart kind: render it, read the SVG back and check its
//! geometry (where the legend, ticks and data lie), and decode its PNG.

use std::path::{Path, PathBuf};

use super::*;

/// An SVG element's attribute.
fn attr(el: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let start = el.find(&key)? + key.len();
    Some(el[start..].split('"').next()?.to_owned())
}

/// Every `<tag ...>` element's text (up to its end).
fn elements<'a>(svg: &'a str, tag: &str) -> Vec<&'a str> {
    let open = format!("<{tag} ");
    svg.match_indices(&open)
        .map(|(i, _)| {
            let rest = &svg[i..];
            let end =
                rest.find(&format!("</{tag}>")).map(|e| e + tag.len() + 3).or_else(|| rest.find("/>").map(|e| e + 2));
            &rest[..end.unwrap_or(rest.len())]
        })
        .collect()
}

/// (x, y, text) of every text element.
fn texts(svg: &str) -> Vec<(f64, f64, String)> {
    elements(svg, "text")
        .into_iter()
        .filter_map(|el| {
            let body = el[el.find('>')? + 1..].trim_end_matches("</text>").trim().to_owned();
            Some((attr(el, "x")?.parse().ok()?, attr(el, "y")?.parse().ok()?, body))
        })
        .collect()
}

/// All points of the data lines (`polyline` with a stroke width of 2).
fn line_points(svg: &str) -> Vec<(f64, f64)> {
    elements(svg, "polyline")
        .into_iter()
        .filter(|el| attr(el, "stroke-width").as_deref() == Some("2"))
        .flat_map(|el| {
            attr(el, "points")
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|p| {
                    let (x, y) = p.split_once(',')?;
                    Some((x.parse().ok()?, y.parse().ok()?))
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

fn inside((l, t, r, b): (i32, i32, i32, i32), (x, y): (f64, f64)) -> bool {
    (l as f64 - 1.0..=r as f64 + 1.0).contains(&x) && (t as f64 - 1.0..=b as f64 + 1.0).contains(&y)
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sglab-plots-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// The PNG decodes at twice the SVG's size and has dark (text, axis) pixels.
fn check_png(svg: &Path) {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(png_of(svg)).unwrap()));
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let svg_text = std::fs::read_to_string(svg).unwrap();
    let root = elements(&svg_text, "svg")[0];
    let size = |k: &str| attr(root, k).unwrap().parse::<u32>().unwrap();
    assert_eq!((info.width, info.height), (size("width") * 2, size("height") * 2), "PNG at twice the SVG's size");
    let dark = buf.chunks(3).filter(|p| p.iter().all(|&c| c < 60)).count();
    assert!(dark > 2_000, "{dark} dark pixels: text and axes are drawn");
    // The title row (top 40 px at 2x) holds glyphs: the bundled font drew.
    let title_dark = buf[..(W * 2 * 3 * 40) as usize].chunks(3).filter(|p| p[0] < 100).count();
    assert!(title_dark > 100, "{title_dark} dark pixels in the title row");
}

#[test]
fn line_chart_keeps_its_legend_right_of_the_data() {
    let long = "routing.policy=cache-aware, nodes.0.args=max-running-requests=8, and more".to_owned();
    let series: Series = vec![
        ("client: queued".into(), steps((0..50).map(|i| (i as f64 * 0.2, (i % 7) as f64)))),
        (long.clone(), (0..50).map(|i| (i as f64 * 0.2, 10.0 - (i % 5) as f64)).collect()),
    ];
    let path = tmp("lines.svg");
    let layout = Chart::over_time("Requests over time", "requests", &series).save(&path).unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    let legend = layout.legend.expect("two series have a legend");
    assert!(legend.0 >= layout.plot.2, "legend {legend:?} starts right of the plot {:?}", layout.plot);
    let pts = line_points(&svg);
    assert!(pts.len() >= 100, "{} points", pts.len());
    assert!(pts.iter().all(|&p| inside(layout.plot, p)), "every data point lies in the plot area");
    let t = texts(&svg);
    let label = t.iter().find(|x| x.2 == "client: queued").expect("legend label");
    assert!(label.0 > layout.plot.2 as f64, "label at x {} right of the plot", label.0);
    // The long label is cut to fit, with an ellipsis, inside the picture.
    let cut = t.iter().find(|x| x.2.starts_with("routing.policy=") && x.2.ends_with('…')).expect("cut label");
    assert!(cut.2.len() < long.len());
    check_png(&path);
}

#[test]
fn count_axis_has_integer_ticks_and_one_series_has_no_legend() {
    // Peak 2 requests: a default axis would tick 0.0, 0.2, ... 2.2.
    let series: Series = vec![(String::new(), steps([(0.0, 0.0), (1.0, 2.0), (2.0, 1.0), (3.0, 0.0)].into_iter()))];
    let path = tmp("counts.svg");
    let mut chart = Chart::over_time("Requests in flight", "requests", &series);
    chart.y_integer = true;
    let layout = chart.save(&path).unwrap();
    assert_eq!(layout.legend, None);
    let svg = std::fs::read_to_string(&path).unwrap();
    // y tick labels: right-anchored texts left of the plot area.
    let y_ticks: Vec<String> = texts(&svg)
        .into_iter()
        .filter(|(x, y, _)| *x < layout.plot.0 as f64 && (layout.plot.1 as f64..=layout.plot.3 as f64).contains(y))
        .map(|t| t.2)
        .filter(|t| t != "requests")
        .collect();
    assert_eq!(y_ticks, ["0", "1", "2", "3"], "whole numbers, each once");
    check_png(&path);
}

#[test]
fn cdf_axis_fits_the_data_and_log_scale_spans_decades() {
    // ITL-like values in 7..8.7 ms: the axis starts near 7, not at 0.
    let v: Vec<f64> = (0..200).map(|i| 7.0 + 1.7 * i as f64 / 199.0).collect();
    let path = tmp("cdf.svg");
    cdf(&path, "Inter-token latency", "milliseconds", &[(String::new(), v)], Scale::Linear).unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    let x_ticks: Vec<f64> = texts(&svg).iter().filter_map(|t| t.2.parse::<f64>().ok()).filter(|&x| x > 1.5).collect();
    let lo = x_ticks.iter().copied().fold(f64::MAX, f64::min);
    assert!((6.5..=7.1).contains(&lo), "first x tick {lo} near the data's minimum: {x_ticks:?}");
    let pts = line_points(&svg);
    assert_eq!(pts.len(), 200);
    let xs: Vec<f64> = pts.iter().map(|p| p.0).collect();
    let span = xs.iter().copied().fold(f64::MIN, f64::max) - xs.iter().copied().fold(f64::MAX, f64::min);
    assert!(span > 700.0, "the data spans {span} px of the ~830 px plot");
    check_png(&path);

    let wide: Vec<f64> = (0..300).map(|i| 10f64.powf(i as f64 / 100.0)).collect(); // 1 .. 1000
    let path = tmp("cdf_log.svg");
    cdf(&path, "Latency", "milliseconds", &[("a".into(), wide.clone()), ("b".into(), wide)], Scale::Log).unwrap();
    let pts = line_points(&std::fs::read_to_string(&path).unwrap());
    // Equal ratios take equal widths: 1→10 as wide as 10→100.
    let x = |k: usize| pts[k].0;
    let (d1, d2) = (x(100) - x(0), x(200) - x(100));
    assert!((d1 - d2).abs() <= 2.0, "decades {d1} and {d2} px wide");
}

#[test]
fn sweep_lines_have_a_marker_on_every_point() {
    let series: Series = vec![
        ("max-running-requests=8".into(), vec![(1.0, 20.0), (2.0, 25.0), (4.0, 40.0), (8.0, 90.0)]),
        ("max-running-requests=32".into(), vec![(1.0, 18.0), (2.0, 21.0), (4.0, 30.0), (8.0, 60.0)]),
    ];
    let path = tmp("sweep.svg");
    let layout = Chart {
        title: "ttft p50 vs request rate",
        x_label: "request rate (req/s)",
        y_label: "ms",
        series: &series,
        style: Style::Markers,
        x_scale: Scale::Linear,
        y_scale: Scale::Linear,
        x_fit: true,
        y_integer: false,
        y_max: None,
    }
    .save(&path)
    .unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    let circles: Vec<(f64, f64)> = elements(&svg, "circle")
        .iter()
        .filter_map(|c| Some((attr(c, "cx")?.parse().ok()?, attr(c, "cy")?.parse().ok()?)))
        .collect();
    let in_plot = circles.iter().filter(|&&p| inside(layout.plot, p)).count();
    assert_eq!(in_plot, 8, "one marker per point in the plot area");
    assert_eq!(circles.len() - in_plot, 2, "and one per legend row");
    assert!(texts(&svg).iter().any(|t| t.2 == "max-running-requests=32"));
    check_png(&path);
}

#[test]
fn bars_have_readable_labels_left_of_the_bars() {
    let items = vec![("least-inflight".to_owned(), 120.5), ("round-robin".into(), 150.0), ("cache-aware".into(), 80.0)];
    let path = tmp("bars.svg");
    let layout = bars(&path, "ttft_total p50 by strategy", "ms", &items).unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    let t = texts(&svg);
    for (name, v) in &items {
        let label = t.iter().find(|x| &x.2 == name).unwrap_or_else(|| panic!("{name} label"));
        assert!(label.0 < layout.plot.0 as f64, "{name} left of the plot");
        assert!(t.iter().any(|x| x.2 == tick(*v)), "value {v} written");
    }
    // Bars: filled rects in the plot area, widths in the values' ratios.
    let rects: Vec<f64> = elements(&svg, "rect")
        .iter()
        .filter(|r| attr(r, "fill").is_some_and(|f| f != "#FFFFFF"))
        .filter_map(|r| attr(r, "width")?.parse().ok())
        .collect();
    assert_eq!(rects.len(), 3, "{rects:?}");
    assert!((rects[1] / rects[0] - 150.0 / 120.5).abs() < 0.02, "{rects:?}");
    check_png(&path);
}

#[test]
fn ticks_have_no_float_noise() {
    assert_eq!(tick(0.30000000000000004), "0.3");
    assert_eq!(tick(12.5), "12.5");
    assert_eq!(tick(1200.0), "1200");
    assert_eq!(tick(-0.0), "0");
}

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
