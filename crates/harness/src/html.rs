//! The self-contained HTML report: the tables and the SVG charts inline, no
//! script and no external file, so that docs can embed or link it as is.

use askama::Template;

use crate::charts;
use crate::report::RunReport;

#[derive(Template)]
#[template(path = "report.html")]
struct Page<'a> {
    scenario: &'a str,
    description: &'a str,
    runs: Vec<RunSection<'a>>,
    sweep_svg: Option<String>,
}

struct RunSection<'a> {
    run: &'a RunReport,
    parameters: String,
    rows: Vec<Row>,
    notes: Vec<String>,
    charts: Vec<String>,
}

/// One transport's line of the table, each cell formatted, the model's
/// figure beside the measured one.
struct Row {
    transport: String,
    requests: u64,
    expected_requests: String,
    requests_formula: String,
    per_client_minute: String,
    per_delivered: String,
    empty: u64,
    bytes_up: u64,
    bytes_down: u64,
    bytes_per_delivered: String,
    p50: String,
    p90: String,
    p99: String,
    max: String,
    mean: String,
    expected_mean: String,
    latency_formula: String,
    lost_dup_order: String,
    exact: bool,
}

impl Row {
    fn of(t: &crate::report::TransportReport) -> Self {
        Row {
            transport: t.transport.to_string(),
            requests: t.requests,
            expected_requests: format!("{}{:.0}", t.theory.requests_mark(), t.theory.requests),
            requests_formula: t.theory.requests_formula.clone(),
            per_client_minute: format!("{:.1}", t.requests_per_client_per_minute),
            per_delivered: format!("{:.2}", t.requests_per_delivered),
            empty: t.empty_responses,
            bytes_up: t.bytes_up,
            bytes_down: t.bytes_down,
            bytes_per_delivered: format!("{:.0}", t.bytes_per_delivered),
            p50: format!("{:.1}", t.latency_ms.p50),
            p90: format!("{:.1}", t.latency_ms.p90),
            p99: format!("{:.1}", t.latency_ms.p99),
            max: format!("{:.1}", t.latency_ms.max),
            mean: format!("{:.1}", t.latency_ms.mean),
            expected_mean: t
                .theory
                .mean_latency_ms
                .map_or("–".into(), |m| format!("{m:.0}")),
            latency_formula: t.theory.latency_formula.clone(),
            lost_dup_order: format!("{}/{}/{}", t.missing, t.duplicated, t.out_of_order),
            exact: t.missing == 0 && t.duplicated == 0 && t.out_of_order == 0,
        }
    }
}

/// The charts of a scenario as separate SVG files: (file name, SVG).
pub fn figures(scenario: &str, runs: &[RunReport]) -> anyhow::Result<Vec<(String, String)>> {
    let chart_error = |e: Box<dyn std::error::Error>| anyhow::anyhow!("drawing a chart: {e}");
    let mut files = Vec::new();
    if let [run] = runs {
        files.push((
            format!("{scenario}-latency.svg"),
            charts::latency(run).map_err(chart_error)?,
        ));
        files.push((
            format!("{scenario}-requests.svg"),
            charts::per_transport(
                run,
                "requests per delivered notification",
                "requests",
                |t| t.requests_per_delivered,
            )
            .map_err(chart_error)?,
        ));
        files.push((
            format!("{scenario}-bytes.svg"),
            charts::per_transport(
                run,
                "bytes on the wire per delivered notification",
                "bytes",
                |t| t.bytes_per_delivered,
            )
            .map_err(chart_error)?,
        ));
    } else {
        files.push((
            format!("{scenario}-sweep.svg"),
            charts::interval_sweep(runs).map_err(chart_error)?,
        ));
    }
    Ok(files)
}

/// Renders the report of a scenario's runs.
pub fn render(scenario: &str, description: &str, runs: &[RunReport]) -> anyhow::Result<String> {
    let chart_error = |e: Box<dyn std::error::Error>| anyhow::anyhow!("drawing a chart: {e}");
    let mut sections = Vec::new();
    for run in runs {
        let charts = vec![
            charts::latency(run).map_err(chart_error)?,
            charts::per_transport(
                run,
                "requests per delivered notification",
                "requests",
                |t| t.requests_per_delivered,
            )
            .map_err(chart_error)?,
            charts::per_transport(
                run,
                "bytes on the wire per delivered notification",
                "bytes",
                |t| t.bytes_per_delivered,
            )
            .map_err(chart_error)?,
        ];
        sections.push(RunSection {
            run,
            parameters: run.parameters(),
            rows: run.transports.iter().map(Row::of).collect(),
            notes: run.notes(),
            charts,
        });
    }
    let sweep_svg = if runs.len() > 1 {
        Some(charts::interval_sweep(runs).map_err(chart_error)?)
    } else {
        None
    };
    let page = Page {
        scenario,
        description,
        runs: sections,
        sweep_svg,
    };
    Ok(page.render()?)
}
