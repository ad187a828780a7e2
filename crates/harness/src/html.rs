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
    table: String,
    charts: Vec<String>,
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
            table: run.table(),
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
