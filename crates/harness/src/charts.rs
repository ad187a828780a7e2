//! SVG charts for the HTML report, drawn with plotters: latency by
//! percentile per transport, requests and bytes per delivered notification,
//! and the short-poll interval sweep.

use plotters::prelude::*;

use crate::report::RunReport;

const WIDTH: u32 = 720;
const HEIGHT: u32 = 360;
const COLORS: [RGBColor; 6] = [
    RGBColor(36, 99, 235),
    RGBColor(22, 128, 60),
    RGBColor(180, 83, 9),
    RGBColor(147, 51, 234),
    RGBColor(8, 145, 178),
    RGBColor(190, 24, 93),
];

type Chart = Result<String, Box<dyn std::error::Error>>;

/// The floor of the latency axis, so that the log scale has a bottom.
const MIN_MS: f64 = 0.1;

/// Delivery latency at each percentile, one line per transport.
pub fn latency(run: &RunReport) -> Chart {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let max = run
            .transports
            .iter()
            .flat_map(|t| t.latency_curve.iter().map(|(_, ms)| *ms))
            .fold(1.0_f64, f64::max);
        // Logarithmic: push latencies are milliseconds, polling ones seconds.
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{}: delivery latency by percentile", run.name),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..100.0, (MIN_MS..max * 1.5).log_scale())?;
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .x_desc("percentile")
            .y_desc("ms (log scale)")
            .draw()?;
        for (i, t) in run.transports.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let points = t.latency_curve.iter().map(|(p, ms)| (*p, ms.max(MIN_MS)));
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))?
                .label(t.transport.to_string())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()?;
        root.present()?;
    }
    Ok(svg)
}

/// One bar per transport of `value`.
pub fn per_transport(
    run: &RunReport,
    title: &str,
    unit: &str,
    value: impl Fn(&crate::report::TransportReport) -> f64,
) -> Chart {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let values: Vec<(String, f64)> = run
            .transports
            .iter()
            .map(|t| (t.transport.to_string(), value(t)))
            .collect();
        let max = values.iter().map(|(_, v)| *v).fold(0.001_f64, f64::max);
        let names: Vec<String> = values.iter().map(|(n, _)| n.clone()).collect();
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("{}: {title}", run.name), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(70)
            .build_cartesian_2d(names.as_slice().into_segmented(), 0.0..max * 1.15)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(WHITE)
            .y_desc(unit)
            .x_label_formatter(&|segment| match segment {
                SegmentValue::CenterOf(name) | SegmentValue::Exact(name) => (*name).clone(),
                SegmentValue::Last => String::new(),
            })
            .draw()?;
        for (i, (_, v)) in values.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let bar = Histogram::vertical(&chart)
                .style(color.filled())
                .margin(30)
                .data(std::iter::once((&names[i], *v)));
            chart.draw_series(bar)?;
        }
        root.present()?;
    }
    Ok(svg)
}

/// Short polling across intervals: requests per client per minute and mean
/// latency against the interval, measured and expected.
pub fn interval_sweep(runs: &[RunReport]) -> Chart {
    let points: Vec<(f64, f64, f64)> = runs
        .iter()
        .filter_map(|run| {
            let t = run
                .transports
                .iter()
                .find(|t| t.transport == crate::Transport::ShortPoll)?;
            Some((
                run.poll_interval_s,
                t.requests_per_client_per_minute,
                t.latency_ms.mean,
            ))
        })
        .collect();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let max_i = points.iter().map(|p| p.0).fold(0.5, f64::max);
        let max_requests = points
            .iter()
            .map(|p| p.1.max(60.0 / p.0))
            .fold(1.0, f64::max);
        let max_latency = points
            .iter()
            .map(|p| p.2.max(p.0 * 500.0))
            .fold(1.0, f64::max);
        let mut chart = ChartBuilder::on(&root)
            .caption("short polling: the interval trade-off", ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .right_y_label_area_size(60)
            .build_cartesian_2d(0.0..max_i * 1.05, 0.0..max_requests * 1.1)?
            .set_secondary_coord(0.0..max_i * 1.05, 0.0..max_latency * 1.1);
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .x_desc("interval I (s)")
            .y_desc("requests per client per minute")
            .draw()?;
        chart
            .configure_secondary_axes()
            .y_desc("mean latency (ms)")
            .draw()?;
        let blue = COLORS[0];
        let orange = COLORS[2];
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|p| (p.0, p.1)),
                blue.stroke_width(2),
            ))?
            .label("requests/client/min (measured)")
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], blue.stroke_width(2))
            });
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|p| (p.0, 60.0 / p.0)),
                blue.mix(0.4),
            ))?
            .label("60/I (expected)")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], blue.mix(0.4)));
        chart
            .draw_secondary_series(LineSeries::new(
                points.iter().map(|p| (p.0, p.2)),
                orange.stroke_width(2),
            ))?
            .label("mean latency ms (measured)")
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], orange.stroke_width(2))
            });
        chart
            .draw_secondary_series(LineSeries::new(
                points.iter().map(|p| (p.0, p.0 * 500.0)),
                orange.mix(0.4),
            ))?
            .label("I/2 (expected)")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], orange.mix(0.4)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperMiddle)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()?;
        root.present()?;
    }
    Ok(svg)
}
