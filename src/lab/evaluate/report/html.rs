//! The HTML report: the markdown tables of the parent module as HTML, and the
//! precision–recall charts drawn by `plotters` as inline SVG.
//!
//! Where it sits: `report` renders an [`Evaluation`]; this file is its HTML half, called by
//! `evaluate::run` through [`html`]. Pure: no I/O, no clock.

use plotters::prelude::*;

use super::*;
use crate::lab::evaluate::EvaluateError;
use crate::lab::evaluate::metrics::PrPoint;

/// The HTML report: charts, then the same tables, then the inputs. Self-contained.
pub fn html(eval: &Evaluation, inputs: &Inputs) -> Result<String, EvaluateError> {
    let mut charts = pr_chart(eval, Zoom::Full)?;
    if let Some(zoomed) = zoom_range(eval) {
        charts += &pr_chart(eval, zoomed)?;
    }
    let mut out = format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 76rem; padding: 0 1rem; color: #222; line-height: 1.4; }}
h1 {{ font-size: 1.6rem; }} h2 {{ font-size: 1.15rem; margin-top: 2rem; }}
table {{ border-collapse: collapse; font-variant-numeric: tabular-nums; }}
th, td {{ padding: .3rem .7rem; border-bottom: 1px solid #ddd; text-align: right; }}
th {{ background: #f4f4f4; }} th:first-child, td.name {{ text-align: left; }}
table.text th, table.text td {{ text-align: left; }}
td.pass {{ color: #1a7f37; }} td.fail {{ color: #c62828; font-weight: 600; }}
.note {{ color: #555; font-size: .9rem; max-width: 60rem; }}
.charts {{ display: flex; flex-wrap: wrap; gap: 1rem; }}
.notes {{ background: #fff8e1; padding: .5rem 1rem; border-left: 4px solid #f0b400; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p class="note">{lines} log lines, {sessions} sessions ({attacked} attacked). Each row ran over
the same events; the charts sweep a threshold over each session's highest score
(dots: the configured operating points; baselines: single points).</p>
"#,
        title = escape(&inputs.title),
        lines = eval.stats.lines,
        sessions = eval.stats.sessions,
        attacked = eval.stats.attacked_sessions,
    );
    if !eval.notes.is_empty() {
        out += "<div class=\"notes\">\n";
        for note in &eval.notes {
            let _ = writeln!(out, "<p>{}</p>", escape(note));
        }
        out += "</div>\n";
    }
    let _ = write!(
        out,
        "<h2>Precision–recall</h2>\n<div class=\"charts\">\n{charts}</div>\n"
    );
    for table in tables(eval) {
        out += &table.html();
    }
    out += &inputs_table(eval, inputs).html();
    out += "</body>\n</html>\n";
    Ok(out)
}

/// Axis ranges of a chart: the whole square, or zoomed into the corner where the rows are.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Zoom {
    Full,
    Corner {
        recall_from: f64,
        precision_from: f64,
    },
}

/// A zoom onto the rows' operating points, when they all sit in a corner.
fn zoom_range(eval: &Evaluation) -> Option<Zoom> {
    let points: Vec<(f64, f64)> = eval
        .rows
        .iter()
        .filter_map(|r| Some((r.metrics.recall()?, r.metrics.precision()?)))
        .collect();
    let floor = |v: f64| ((v - 0.02) * 20.0).floor() / 20.0;
    let recall_from = floor(points.iter().map(|p| p.0).fold(1.0, f64::min)).max(0.0);
    let precision_from = floor(points.iter().map(|p| p.1).fold(1.0, f64::min)).max(0.0);
    (recall_from >= 0.3 || precision_from >= 0.3).then_some(Zoom::Corner {
        recall_from,
        precision_from,
    })
}

const SCORED_COLOURS: [RGBColor; 2] = [RGBColor(31, 119, 180), RGBColor(214, 39, 40)];
const BASELINE_COLOURS: [RGBColor; 3] = [
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

type ChartResult<T> = Result<T, Box<dyn std::error::Error>>;

/// One precision–recall chart as an SVG element.
fn pr_chart(eval: &Evaluation, zoom: Zoom) -> Result<String, EvaluateError> {
    let mut svg = String::new();
    draw_pr_chart(eval, zoom, &mut svg).map_err(|e| EvaluateError::Chart(e.to_string()))?;
    // plotters writes a standalone document; inline SVG needs only the element.
    let start = svg.find("<svg").unwrap_or(0);
    Ok(svg[start..].to_string())
}

fn draw_pr_chart(eval: &Evaluation, zoom: Zoom, svg: &mut String) -> ChartResult<()> {
    let (x0, y0, caption) = match zoom {
        Zoom::Full => (0.0, 0.0, "Sessions: precision vs recall"),
        Zoom::Corner {
            recall_from,
            precision_from,
        } => (recall_from, precision_from, "Zoomed in"),
    };
    let in_view = |p: &PrPoint| p.recall >= x0 - 1e-9 && p.precision >= y0 - 1e-9;
    // A little headroom above 100 % so points on the top line are not cut in half.
    let (x1, y1) = (1.0 + (1.0 - x0) * 0.02, 1.0 + (1.0 - y0) * 0.02);
    // Enough decimals that neighbouring tick labels differ.
    let decimals = if (1.0 - x0).min(1.0 - y0) < 0.1 { 1 } else { 0 };
    let percent = move |v: &f64| format!("{:.*}%", decimals, (v * 100.0).min(100.0));
    let root = SVGBackend::with_string(svg, (600, 460)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 18))
        .margin(14)
        .x_label_area_size(42)
        .y_label_area_size(56)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    chart
        .configure_mesh()
        .x_desc("recall (attacked sessions revoked)")
        .y_desc("precision")
        .x_label_formatter(&percent)
        .y_label_formatter(&percent)
        .light_line_style(RGBColor(240, 240, 240))
        .draw()?;

    let scored = eval.rows.iter().filter(|r| r.kind != RowKind::Baseline);
    for (row, colour) in scored.zip(SCORED_COLOURS.iter().cycle()) {
        let colour = *colour;
        let ap = metrics::average_precision(&row.curve);
        let points: Vec<(f64, f64)> = metrics::thin(&row.curve, 400)
            .iter()
            .filter(|p| in_view(p))
            .map(|p| (p.recall, p.precision))
            .collect();
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
            .label(format!("{} (AP {ap:.3})", row.name))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
            });
        if let (Some(recall), Some(precision)) = (row.metrics.recall(), row.metrics.precision()) {
            chart.draw_series(std::iter::once(Circle::new(
                (recall, precision),
                5,
                colour.filled(),
            )))?;
        }
    }
    let baselines = eval.rows.iter().filter(|r| r.kind == RowKind::Baseline);
    for (i, (row, colour)) in baselines.zip(BASELINE_COLOURS.iter().cycle()).enumerate() {
        let colour = *colour;
        let (Some(recall), Some(precision)) = (row.metrics.recall(), row.metrics.precision())
        else {
            continue;
        };
        let at = (recall, precision);
        let label = row.name.clone();
        match i % 3 {
            0 => chart
                .draw_series(std::iter::once(TriangleMarker::new(at, 7, colour.filled())))?
                .label(label)
                .legend(move |(x, y)| TriangleMarker::new((x + 9, y), 6, colour.filled())),
            1 => chart
                .draw_series(std::iter::once(Cross::new(at, 6, colour.stroke_width(3))))?
                .label(label)
                .legend(move |(x, y)| Cross::new((x + 9, y), 5, colour.stroke_width(3))),
            _ => chart
                .draw_series(std::iter::once(
                    EmptyElement::at(at) + Rectangle::new([(-6, -6), (6, 6)], colour.filled()),
                ))?
                .label(label)
                .legend(move |(x, y)| {
                    Rectangle::new([(x + 4, y - 5), (x + 14, y + 5)], colour.filled())
                }),
        };
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(180, 180, 180))
        .label_font(("sans-serif", 13))
        .draw()?;
    root.present()?;
    Ok(())
}
