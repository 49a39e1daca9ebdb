//! Charts of what a section measured, written as SVG files under `docs/plots/`: timelines
//! per bucket of time and latency distributions. A section hands its series over after
//! its run, from the data its table came from; nothing here runs while the bench
//! measures.

use std::error::Error;
use std::path::PathBuf;
use std::time::Duration;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// A README's usual width. Font sizes below are plotters' sizes, which its SVG backend
/// writes divided by 1.24 (16 is 12.9 px).
const WIDTH: u32 = 800;
const TITLE_HEIGHT: u32 = 36;
const LEGEND_ROW: u32 = 22;
const TIMELINE_PANEL: u32 = 210;
const CDF_HEIGHT: u32 = 460;
const FONT: &str = "sans-serif";

/// Okabe-Ito, told apart with the common forms of colour blindness, without its yellow
/// (too pale on white).
const COLORS: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
];

/// What a section hands over to be drawn.
pub(crate) enum Chart {
    Timeline(Timeline),
    Cdf(Cdf),
}

/// Values per bucket of time, in panels stacked over one time axis.
pub(crate) struct Timeline {
    /// The file's name without `.svg`.
    pub(crate) name: &'static str,
    pub(crate) title: String,
    pub(crate) bucket: Duration,
    pub(crate) panels: Vec<Panel>,
    /// Moments marked with a dashed vertical line across every panel.
    pub(crate) marks: Vec<Mark>,
}

/// One panel of a timeline: a y axis and its lines. A line keeps its colour in every
/// panel of the chart; the legend names each label once.
pub(crate) struct Panel {
    pub(crate) y_label: String,
    pub(crate) lines: Vec<Line>,
}

/// One value per bucket, from time zero.
pub(crate) struct Line {
    pub(crate) label: String,
    pub(crate) values: Vec<f64>,
}

pub(crate) struct Mark {
    pub(crate) at: Duration,
    pub(crate) label: String,
}

/// Cumulative distributions of latencies, one curve per label, on a logarithmic axis.
pub(crate) struct Cdf {
    pub(crate) name: &'static str,
    pub(crate) title: String,
    pub(crate) x_label: String,
    /// Where the logarithmic axis starts.
    pub(crate) left_edge: Duration,
    pub(crate) curves: Vec<(String, Vec<Duration>)>,
}

impl Chart {
    /// Writes `docs/plots/<name>.svg` in the repository, replacing it, and returns its path.
    pub(crate) fn write(&self) -> Result<PathBuf, Box<dyn Error>> {
        let name = match self {
            Chart::Timeline(timeline) => timeline.name,
            Chart::Cdf(cdf) => cdf.name,
        };
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/plots");
        std::fs::create_dir_all(&dir)?;
        let path = dir.canonicalize()?.join(format!("{name}.svg"));
        match self {
            Chart::Timeline(timeline) => draw_timeline(timeline, &path)?,
            Chart::Cdf(cdf) => draw_cdf(cdf, &path)?,
        }
        Ok(path)
    }
}

/// How many buckets of `bucket` cover zero to `end`, the last one maybe in part.
pub(crate) fn buckets(bucket: Duration, end: Duration) -> usize {
    usize::try_from(end.as_nanos().div_ceil(bucket.as_nanos())).unwrap_or(0)
}

/// How many of `times` fall in each `bucket` from zero to `end`; later ones are left out.
pub(crate) fn per_bucket(times: impl IntoIterator<Item = Duration>, bucket: Duration, end: Duration) -> Vec<f64> {
    let mut counts = vec![0.0; buckets(bucket, end)];
    for at in times {
        let index = at.as_nanos() / bucket.as_nanos();
        if let Some(count) = usize::try_from(index).ok().and_then(|i| counts.get_mut(i)) {
            *count += 1.0;
        }
    }
    counts
}

/// What a counter read at the end of each bucket grew by in it, from `start`.
pub(crate) fn growth(start: u64, readings: &[u64]) -> Vec<f64> {
    let mut before = start;
    readings
        .iter()
        .map(|&reading| {
            let grew = reading.saturating_sub(before);
            before = reading;
            grew as f64
        })
        .collect()
}

/// Each value added to those before it.
pub(crate) fn running_total(values: &[f64]) -> Vec<f64> {
    values
        .iter()
        .scan(0.0, |total, value| {
            *total += value;
            Some(*total)
        })
        .collect()
}

/// The empirical distribution: each latency, in ascending order, with the fraction of
/// latencies at or below it.
pub(crate) fn cdf(latencies: &[Duration]) -> Vec<(Duration, f64)> {
    let mut sorted = latencies.to_vec();
    sorted.sort_unstable();
    let n = sorted.len() as f64;
    let mut points: Vec<(Duration, f64)> = Vec::with_capacity(sorted.len());
    for (i, latency) in sorted.into_iter().enumerate() {
        let fraction = (i + 1) as f64 / n;
        // Equal latencies make one point, at the fraction of the last of them.
        match points.last_mut() {
            Some(last) if last.0 == latency => last.1 = fraction,
            _ => points.push((latency, fraction)),
        }
    }
    points
}

/// A colour per label, in the order labels first appear.
fn palette<'a>(labels: impl IntoIterator<Item = &'a str>) -> Vec<(&'a str, RGBColor)> {
    let mut seen: Vec<(&str, RGBColor)> = Vec::new();
    for label in labels {
        if !seen.iter().any(|(l, _)| *l == label) {
            seen.push((label, COLORS[seen.len() % COLORS.len()]));
        }
    }
    seen
}

fn color_of(palette: &[(&str, RGBColor)], label: &str) -> RGBColor {
    palette.iter().find(|(l, _)| *l == label).map_or(BLACK, |(_, c)| *c)
}

/// Rows of legend entries, each a swatch and its label, wrapped at the chart's width.
fn legend_rows<'a>(palette: &[(&'a str, RGBColor)]) -> Vec<Vec<(&'a str, RGBColor, i32)>> {
    let mut rows: Vec<Vec<(&'a str, RGBColor, i32)>> = vec![Vec::new()];
    let mut x = 70;
    for &(label, color) in palette {
        // About 7.5 px a character at 17 (13.7 px) in a sans-serif font.
        let width = 34 + (label.chars().count() as i32 * 15) / 2 + 24;
        if x + width > WIDTH as i32 - 10 && x > 70 {
            rows.push(Vec::new());
            x = 70;
        }
        rows.last_mut().expect("a row").push((label, color, x));
        x += width;
    }
    rows
}

fn draw_legend(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    rows: &[Vec<(&str, RGBColor, i32)>],
) -> Result<(), Box<dyn Error>> {
    for (row, entries) in rows.iter().enumerate() {
        let y = row as i32 * LEGEND_ROW as i32 + LEGEND_ROW as i32 / 2;
        for &(label, color, x) in entries {
            area.draw(&PathElement::new(vec![(x, y), (x + 26, y)], color.stroke_width(3)))?;
            area.draw(&Text::new(
                label.to_owned(),
                (x + 32, y),
                (FONT, 17)
                    .into_font()
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Left, VPos::Center)),
            ))?;
        }
    }
    Ok(())
}

/// Splits off the title and legend strips, draws both, and returns the rest.
fn frame<'a>(
    root: &DrawingArea<SVGBackend<'a>, Shift>,
    title: &str,
    palette: &[(&str, RGBColor)],
) -> Result<DrawingArea<SVGBackend<'a>, Shift>, Box<dyn Error>> {
    root.fill(&WHITE)?;
    let (top, body) = root.split_vertically(TITLE_HEIGHT);
    top.draw(&Text::new(
        title.to_owned(),
        (WIDTH as i32 / 2, TITLE_HEIGHT as i32 / 2 + 2),
        (FONT, 22)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Center)),
    ))?;
    let rows = legend_rows(palette);
    let (legend, rest) = body.split_vertically(rows.len() as u32 * LEGEND_ROW + 6);
    draw_legend(&legend, &rows)?;
    Ok(rest)
}

fn legend_height(palette: &[(&str, RGBColor)]) -> u32 {
    legend_rows(palette).len() as u32 * LEGEND_ROW + 6
}

fn draw_timeline(timeline: &Timeline, path: &PathBuf) -> Result<(), Box<dyn Error>> {
    let palette = palette(
        timeline
            .panels
            .iter()
            .flat_map(|p| p.lines.iter().map(|l| l.label.as_str())),
    );
    let panels = timeline.panels.len() as u32;
    let height = TITLE_HEIGHT + legend_height(&palette) + panels * TIMELINE_PANEL + 24;
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    let body = frame(&root, &timeline.title, &palette)?;
    let buckets = timeline
        .panels
        .iter()
        .flat_map(|p| p.lines.iter().map(|l| l.values.len()))
        .max()
        .unwrap_or(0);
    let step = timeline.bucket.as_secs_f64();
    let end = step * buckets as f64;
    for (index, (panel, area)) in timeline
        .panels
        .iter()
        .zip(body.split_evenly((timeline.panels.len(), 1)))
        .enumerate()
    {
        let last = index + 1 == timeline.panels.len();
        let top = panel
            .lines
            .iter()
            .flat_map(|l| l.values.iter().copied())
            .fold(0.0, f64::max);
        // Room above the highest value for the marks' labels; an all-zero panel still
        // shows an axis from 0 to 1.
        let top = if top > 0.0 { top * 1.15 } else { 1.0 };
        let mut chart = ChartBuilder::on(&area)
            .margin_left(10)
            .margin_right(20)
            .margin_top(8)
            .x_label_area_size(if last { 44 } else { 22 })
            .y_label_area_size(74)
            .build_cartesian_2d(0.0..end, 0.0..top)?;
        let mut mesh = chart.configure_mesh();
        mesh.y_desc(panel.y_label.as_str())
            .label_style((FONT, 16))
            .axis_desc_style((FONT, 17))
            .x_labels(12)
            .y_labels(5)
            .light_line_style(WHITE)
            .bold_line_style(RGBColor(225, 225, 225))
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| count(*y));
        if last {
            mesh.x_desc("time since start (s)");
        }
        mesh.draw()?;
        for mark in &timeline.marks {
            let x = mark.at.as_secs_f64();
            chart.draw_series(DashedLineSeries::new(
                vec![(x, 0.0), (x, top)],
                6,
                4,
                RGBColor(90, 90, 90).stroke_width(1),
            ))?;
            if index == 0 {
                chart.draw_series(std::iter::once(Text::new(
                    mark.label.clone(),
                    (x, top),
                    (FONT, 16)
                        .into_font()
                        .color(&RGBColor(60, 60, 60))
                        .pos(Pos::new(HPos::Left, VPos::Top)),
                )))?;
            }
        }
        for line in &panel.lines {
            let color = color_of(&palette, &line.label);
            // A bucket's value at its middle, so nothing counted after a mark is drawn before it.
            chart.draw_series(LineSeries::new(
                (0..).zip(&line.values).map(|(i, v)| ((f64::from(i) + 0.5) * step, *v)),
                color.stroke_width(2),
            ))?;
        }
    }
    root.present()?;
    Ok(())
}

fn draw_cdf(cdf: &Cdf, path: &PathBuf) -> Result<(), Box<dyn Error>> {
    let palette = palette(cdf.curves.iter().map(|(label, _)| label.as_str()));
    let height = TITLE_HEIGHT + legend_height(&palette) + CDF_HEIGHT;
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    let body = frame(&root, &cdf.title, &palette)?;
    let curves: Vec<(&str, Vec<(f64, f64)>)> = cdf
        .curves
        .iter()
        .map(|(label, latencies)| {
            let points = self::cdf(latencies)
                .into_iter()
                .map(|(latency, fraction)| (latency.as_secs_f64() * 1e3, fraction))
                .collect();
            (label.as_str(), points)
        })
        .collect();
    let all = || curves.iter().flat_map(|(_, points)| points.iter().map(|p| p.0));
    // A logarithmic axis from `left_edge`; latencies below it (zero among them) are drawn
    // at it.
    let low = cdf.left_edge.as_secs_f64() * 1e3;
    let high = 10f64.powf(all().fold(low, f64::max).log10().ceil());
    let mut chart = ChartBuilder::on(&body)
        .margin_left(10)
        .margin_right(24)
        .margin_top(8)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d((low..high).log_scale(), 0.0..1.0)?;
    chart
        .configure_mesh()
        .x_desc(cdf.x_label.as_str())
        .y_desc("fraction of callers")
        .label_style((FONT, 16))
        .axis_desc_style((FONT, 17))
        .y_labels(6)
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(225, 225, 225))
        .x_label_formatter(&|x| format!("{x}"))
        .y_label_formatter(&|y| format!("{y:.1}"))
        .draw()?;
    for (label, points) in &curves {
        let color = color_of(&palette, label);
        chart.draw_series(LineSeries::new(
            points.iter().map(|&(x, y)| (x.max(low), y)),
            color.stroke_width(2),
        ))?;
    }
    root.present()?;
    Ok(())
}

/// An axis label: 12000 as "12k", 1500000 as "1.5M".
fn count(value: f64) -> String {
    if value >= 1e6 {
        format!("{}M", trim(value / 1e6))
    } else if value >= 1e3 {
        format!("{}k", trim(value / 1e3))
    } else {
        trim(value)
    }
}

fn trim(value: f64) -> String {
    let text = format!("{value:.1}");
    text.strip_suffix(".0").map_or(text.clone(), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn per_bucket_counts_each_time_in_its_bucket_and_drops_those_past_the_end() {
        let counts = per_bucket([ms(0), ms(99), ms(100), ms(250), ms(300)], ms(100), ms(300));
        assert_eq!(counts, vec![2.0, 1.0, 1.0]);
    }

    #[test]
    fn per_bucket_covers_a_last_partial_bucket() {
        assert_eq!(per_bucket([ms(320)], ms(100), ms(350)), vec![0.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn growth_is_the_difference_between_readings() {
        assert_eq!(growth(5, &[5, 9, 9, 12]), vec![0.0, 4.0, 0.0, 3.0]);
    }

    #[test]
    fn running_total_adds_up() {
        assert_eq!(running_total(&[1.0, 0.0, 2.0]), vec![1.0, 1.0, 3.0]);
    }

    #[test]
    fn cdf_sorts_and_gives_the_fraction_at_or_below() {
        let points = cdf(&[ms(3), ms(1), ms(2), ms(2)]);
        assert_eq!(points, vec![(ms(1), 0.25), (ms(2), 0.75), (ms(3), 1.0)]);
    }

    #[test]
    fn cdf_of_nothing_is_empty() {
        assert!(cdf(&[]).is_empty());
    }

    #[test]
    fn count_labels_are_short() {
        assert_eq!(count(0.0), "0");
        assert_eq!(count(0.5), "0.5");
        assert_eq!(count(12_000.0), "12k");
        assert_eq!(count(1_500_000.0), "1.5M");
    }

    #[test]
    fn a_label_keeps_its_colour_across_panels() {
        let palette = palette(["a", "b", "a", "c"]);
        assert_eq!(palette.len(), 3);
        assert_eq!(color_of(&palette, "c"), COLORS[2]);
    }
}
