//! PNG figures with plotters (bitmap backend). Text uses DejaVu Sans bundled by the
//! `dejavu` crate, registered once as "sans-serif", so no system font is needed.
//! Every figure is drawn to a temporary file and renamed into place.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Errors drawing a figure.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("drawing {path}: {message}")]
    Draw { path: PathBuf, message: String },
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("bad plot input for {path}: {message}")]
    Input { path: PathBuf, message: String },
    #[error("registering the bundled font failed")]
    Font,
}

const FONT: &str = "sans-serif";

fn ensure_font() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
            && plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold()).is_ok()
    });
    if ok { Ok(()) } else { Err(PlotError::Font) }
}

/// Draw into `path` (PNG) through a temp file, then rename.
fn draw_png(
    path: &Path,
    size_px: (u32, u32),
    f: impl FnOnce(&DrawingArea<BitMapBackend, Shift>) -> Result<(), String>,
) -> Result<(), PlotError> {
    ensure_font()?;
    let tmp = path.with_extension("tmp.png");
    {
        let root = BitMapBackend::new(&tmp, size_px).into_drawing_area();
        let err = |message: String| PlotError::Draw {
            path: path.to_path_buf(),
            message,
        };
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        f(&root).map_err(err)?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    std::fs::rename(&tmp, path).map_err(|source| PlotError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Viridis-like colour for `t` in [0, 1] (piecewise linear through 5 anchors of viridis).
pub fn viridis(t: f64) -> RGBColor {
    const ANCHORS: [(f64, f64, f64); 5] = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = t * (ANCHORS.len() - 1) as f64;
    let i = (x.floor() as usize).min(ANCHORS.len() - 2);
    let f = x - i as f64;
    let (a, b) = (ANCHORS[i], ANCHORS[i + 1]);
    let lerp = |p: f64, q: f64| (p + (q - p) * f).round() as u8;
    RGBColor(lerp(a.0, b.0), lerp(a.1, b.1), lerp(a.2, b.2))
}

/// A matrix to draw as a heatmap: `values[row][col]`, NaN drawn grey.
pub struct Heatmap<'a> {
    pub title: &'a str,
    pub values: &'a [Vec<f64>],
    pub row_labels: &'a [String],
    pub col_labels: &'a [String],
    pub row_axis: &'a str,
    pub col_axis: &'a str,
    /// Colour scale range.
    pub vmin: f64,
    pub vmax: f64,
    /// Write each cell's value (format with this many decimals) — for small matrices.
    pub annotate_decimals: Option<usize>,
}

/// Heatmap with a colour bar; row 0 at the top.
pub fn heatmap(path: &Path, h: &Heatmap) -> Result<(), PlotError> {
    let rows = h.values.len();
    let cols = h.values.first().map_or(0, Vec::len);
    if rows == 0 || cols == 0 || h.values.iter().any(|r| r.len() != cols) {
        return Err(PlotError::Input {
            path: path.to_path_buf(),
            message: format!("heatmap needs a non-empty rectangular matrix, got {rows} rows"),
        });
    }
    let cell = (
        if cols > 30 { 14 } else { 36 },
        if rows > 30 { 12 } else { 30 },
    );
    let label_font = if rows > 30 || cols > 30 { 10 } else { 13 };
    let width = (cols as u32 * cell.0 + 260).max(520);
    let height = (rows as u32 * cell.1 + 200).max(360);
    let span = if h.vmax > h.vmin {
        h.vmax - h.vmin
    } else {
        1.0
    };
    draw_png(path, (width, height), |root| {
        let (main, bar) = root.split_horizontally(width - 90);
        let mut chart = ChartBuilder::on(&main)
            .caption(h.title, (FONT, 18))
            .margin(10)
            .x_label_area_size(110)
            .y_label_area_size(110)
            .build_cartesian_2d(
                // plotters' integer ranges include their end: n segments need 0..n-1.
                (0..cols as i32 - 1).into_segmented(),
                (0..rows as i32 - 1).into_segmented(),
            )
            .map_err(s)?;
        let row_name = |v: &SegmentValue<i32>| match v {
            SegmentValue::CenterOf(i) => h
                .row_labels
                .get(rows.wrapping_sub(1).wrapping_sub(*i as usize))
                .cloned()
                .unwrap_or_default(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(cols)
            .y_labels(rows)
            // Column names are drawn below, rotated, by hand: plotters centres rotated
            // tick labels on the tick, which puts them across the axis.
            .x_label_formatter(&|_| String::new())
            .y_label_formatter(&row_name)
            .y_label_style((FONT, label_font))
            .x_desc(h.col_axis)
            .y_desc(h.row_axis)
            .draw()
            .map_err(s)?;
        for (c, name) in h.col_labels.iter().enumerate().take(cols) {
            let (px, py) =
                chart.backend_coord(&(SegmentValue::CenterOf(c as i32), SegmentValue::Exact(0)));
            let style = TextStyle::from((FONT, label_font).into_font())
                .transform(FontTransform::Rotate90)
                .pos(Pos::new(HPos::Left, VPos::Center));
            main.draw(&Text::new(name.clone(), (px, py + 8), style))
                .map_err(s)?;
        }
        let cells = (0..rows).flat_map(|r| (0..cols).map(move |c| (r, c)));
        chart
            .draw_series(cells.map(|(r, c)| {
                let v = h.values[r][c];
                let y = (rows - 1 - r) as i32;
                let colour = if v.is_finite() {
                    viridis((v - h.vmin) / span)
                } else {
                    RGBColor(200, 200, 200)
                };
                Rectangle::new(
                    [
                        (SegmentValue::Exact(c as i32), SegmentValue::Exact(y)),
                        (
                            SegmentValue::Exact(c as i32 + 1),
                            SegmentValue::Exact(y + 1),
                        ),
                    ],
                    colour.filled(),
                )
            }))
            .map_err(s)?;
        if let Some(decimals) = h.annotate_decimals {
            for r in 0..rows {
                for c in 0..cols {
                    let v = h.values[r][c];
                    let bright = (v - h.vmin) / span > 0.6;
                    let style = TextStyle::from((FONT, 12).into_font())
                        .color(if bright { &BLACK } else { &WHITE })
                        .pos(Pos::new(HPos::Center, VPos::Center));
                    let y = (rows - 1 - r) as i32;
                    chart
                        .draw_series(std::iter::once(Text::new(
                            format!("{v:.decimals$}"),
                            (SegmentValue::CenterOf(c as i32), SegmentValue::CenterOf(y)),
                            style,
                        )))
                        .map_err(s)?;
                }
            }
        }
        colour_bar(&bar, h.vmin, h.vmax)
    })
}

fn colour_bar(
    area: &DrawingArea<BitMapBackend, Shift>,
    vmin: f64,
    vmax: f64,
) -> Result<(), String> {
    let top = if vmax > vmin { vmax } else { vmin + 1.0 };
    let mut chart = ChartBuilder::on(area)
        .margin_top(40)
        .margin_bottom(110)
        .margin_right(10)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..1.0, vmin..top)
        .map_err(s)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(6)
        .y_label_style((FONT, 11))
        .draw()
        .map_err(s)?;
    let steps = 100;
    chart
        .draw_series((0..steps).map(|i| {
            let a = vmin + (top - vmin) * i as f64 / steps as f64;
            let b = vmin + (top - vmin) * (i + 1) as f64 / steps as f64;
            Rectangle::new(
                [(0.0, a), (1.0, b)],
                viridis(i as f64 / (steps - 1) as f64).filled(),
            )
        }))
        .map_err(s)?;
    Ok(())
}

/// Confusion matrix heatmap, each row normalised to fractions of the true class,
/// with the fractions written in the cells.
pub fn confusion_matrix(
    path: &Path,
    title: &str,
    confusion: &[Vec<u64>],
    class_names: &[String],
) -> Result<(), PlotError> {
    let norm: Vec<Vec<f64>> = confusion
        .iter()
        .map(|row| {
            let total: u64 = row.iter().sum();
            row.iter()
                .map(|&c| {
                    if total == 0 {
                        f64::NAN
                    } else {
                        c as f64 / total as f64
                    }
                })
                .collect()
        })
        .collect();
    heatmap(
        path,
        &Heatmap {
            title,
            values: &norm,
            row_labels: class_names,
            col_labels: class_names,
            row_axis: "true class",
            col_axis: "predicted class",
            vmin: 0.0,
            vmax: 1.0,
            annotate_decimals: Some(2),
        },
    )
}

/// One labelled trace of a signal panel.
pub struct Trace<'a> {
    pub name: &'a str,
    pub values: &'a [f32],
}

/// One panel of a signal grid (e.g. acc x/y/z of one window).
pub struct SignalPanel<'a> {
    pub title: String,
    pub traces: Vec<Trace<'a>>,
}

const TRACE_COLOURS: [RGBColor; 6] = [
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Where the values of a [`signal_grid`] trace lie on the x axis: value `i` at
/// `start + i · step`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct XAxis<'a> {
    pub start: f64,
    pub step: f64,
    pub label: &'a str,
}

impl XAxis<'static> {
    /// Samples in time, from 0 s.
    pub fn time(sample_rate_hz: f32) -> XAxis<'static> {
        XAxis {
            start: 0.0,
            step: 1.0 / f64::from(sample_rate_hz),
            label: "time (s)",
        }
    }
}

/// The y range every trace fits in (finite values, 5 % padding; ±1 around a flat or
/// empty set) and the x end of the longest trace.
fn shared_ranges<'t>(
    traces: impl Iterator<Item = &'t Trace<'t>>,
    x_axis: XAxis,
) -> (std::ops::Range<f64>, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    let mut max_len = 1usize;
    for t in traces {
        max_len = max_len.max(t.values.len());
        for &v in t.values.iter().filter(|v| v.is_finite()) {
            lo = lo.min(f64::from(v));
            hi = hi.max(f64::from(v));
        }
    }
    // Also catches NaN bounds (no finite values).
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        lo -= 1.0;
        hi += 1.0;
    }
    let pad = 0.05 * (hi - lo);
    (
        (lo - pad)..(hi + pad),
        x_axis.start + max_len as f64 * x_axis.step,
    )
}

/// One panel of line traces with a legend: value `i` of a trace at `x_axis.start + i ·
/// x_axis.step`, the x range up to `x_end`; `y_axis` is the label and its area's width.
fn trace_panel(
    area: &DrawingArea<BitMapBackend, Shift>,
    title: &str,
    traces: &[Trace],
    (x_axis, x_end): (XAxis, f64),
    y_range: std::ops::Range<f64>,
    (y_label, y_label_px): (&str, u32),
    colour: impl Fn(usize) -> RGBColor,
) -> Result<(), String> {
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 13))
        .margin(6)
        .x_label_area_size(28)
        .y_label_area_size(y_label_px)
        .build_cartesian_2d(x_axis.start..x_end, y_range)
        .map_err(s)?;
    chart
        .configure_mesh()
        .x_labels(6)
        .y_labels(5)
        .x_desc(x_axis.label)
        .y_desc(y_label)
        .label_style((FONT, 10))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(s)?;
    for (k, t) in traces.iter().enumerate() {
        let colour = colour(k);
        let pts = t
            .values
            .iter()
            .enumerate()
            .map(|(i, &v)| (x_axis.start + i as f64 * x_axis.step, f64::from(v)));
        chart
            .draw_series(LineSeries::new(pts, colour.stroke_width(2)))
            .map_err(s)?
            .label(t.name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 14, y)], colour.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FONT, 10))
        .background_style(WHITE.mix(0.7))
        .border_style(RGBColor(180, 180, 180))
        .draw()
        .map_err(s)
}

/// Grid of signal panels (`n_cols` per row) sharing one y range.
pub fn signal_grid(
    path: &Path,
    title: &str,
    panels: &[SignalPanel],
    n_cols: usize,
    x_axis: XAxis<'_>,
    y_label: &str,
) -> Result<(), PlotError> {
    if panels.is_empty() || n_cols == 0 {
        return Err(PlotError::Input {
            path: path.to_path_buf(),
            message: "no panels".into(),
        });
    }
    let n_rows = panels.len().div_ceil(n_cols);
    let (y_range, x_end) = shared_ranges(panels.iter().flat_map(|p| &p.traces), x_axis);
    let size = (n_cols as u32 * 340 + 20, n_rows as u32 * 230 + 60);
    draw_png(path, size, |root| {
        let root = root.titled(title, (FONT, 20)).map_err(s)?;
        for (area, panel) in root.split_evenly((n_rows, n_cols)).iter().zip(panels) {
            trace_panel(
                area,
                &panel.title,
                &panel.traces,
                (x_axis, x_end),
                y_range.clone(),
                (y_label, 42),
                |k| TRACE_COLOURS[k % TRACE_COLOURS.len()],
            )?;
        }
        Ok(())
    })
}

/// A point with mean and error (e.g. ±1 sd over seeds).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ErrorPoint {
    pub x: f64,
    pub mean: f64,
    pub err: f64,
}

/// One panel of an error-bar figure.
pub struct ErrorPanel<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    /// Plot x on a log10 axis (ticks at the data's x values).
    pub log_x: bool,
    pub points: &'a [ErrorPoint],
}

/// Panels side by side sharing one y range: mean joined by a line, ±err bars.
pub fn errorbar_panels(path: &Path, title: &str, panels: &[ErrorPanel]) -> Result<(), PlotError> {
    let all: Vec<&ErrorPoint> = panels
        .iter()
        .flat_map(|p| p.points)
        .filter(|p| p.mean.is_finite())
        .collect();
    if all.is_empty() {
        return Err(PlotError::Input {
            path: path.to_path_buf(),
            message: "no finite points".into(),
        });
    }
    let lo = all
        .iter()
        .map(|p| p.mean - p.err.abs())
        .fold(f64::INFINITY, f64::min);
    let hi = all
        .iter()
        .map(|p| p.mean + p.err.abs())
        .fold(f64::NEG_INFINITY, f64::max);
    let pad = if hi > lo { 0.08 * (hi - lo) } else { 1.0 };
    let size = (panels.len() as u32 * 420 + 20, 400);
    draw_png(path, size, |root| {
        let root = root.titled(title, (FONT, 20)).map_err(s)?;
        for (area, panel) in root.split_evenly((1, panels.len())).iter().zip(panels) {
            let tx = |x: f64| if panel.log_x { x.log10() } else { x };
            let xs: Vec<f64> = panel.points.iter().map(|p| tx(p.x)).collect();
            let xmin = xs.iter().cloned().fold(f64::INFINITY, f64::min);
            let xmax = xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let xpad = if xmax > xmin {
                0.08 * (xmax - xmin)
            } else {
                1.0
            };
            let mut chart = ChartBuilder::on(area)
                .caption(panel.title, (FONT, 15))
                .margin(10)
                .x_label_area_size(40)
                .y_label_area_size(70)
                .build_cartesian_2d((xmin - xpad)..(xmax + xpad), (lo - pad)..(hi + pad))
                .map_err(s)?;
            // Ticks at the data's own x values (α, β), written by hand: plotters would
            // put them at round positions of the (log) axis instead.
            chart
                .configure_mesh()
                .x_labels(0)
                .x_desc(panel.x_label)
                .y_desc(panel.y_label)
                .label_style((FONT, 12))
                .light_line_style(RGBColor(235, 235, 235))
                .draw()
                .map_err(s)?;
            for (tx_v, p) in xs.iter().zip(panel.points) {
                // backend_coord is absolute; `area` draws relative to its own corner.
                let (ax, ay) = chart.backend_coord(&(*tx_v, lo - pad));
                let (bx, by) = area.get_base_pixel();
                let (px, py) = (ax - bx, ay - by);
                let style =
                    TextStyle::from((FONT, 12).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
                area.draw(&Text::new(format!("{}", p.x), (px, py + 6), style))
                    .map_err(s)?;
                area.draw(&PathElement::new(vec![(px, py), (px, py + 4)], BLACK))
                    .map_err(s)?;
            }
            let mut pts: Vec<(f64, &ErrorPoint)> =
                xs.iter().cloned().zip(panel.points.iter()).collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let colour = TRACE_COLOURS[2];
            chart
                .draw_series(LineSeries::new(
                    pts.iter().map(|(x, p)| (*x, p.mean)),
                    colour.stroke_width(2),
                ))
                .map_err(s)?;
            // Error bars: vertical line ± err with caps a fixed fraction of the x span wide.
            let cap = 0.02 * (xmax - xmin + 2.0 * xpad);
            for (x, p) in &pts {
                let (a, b) = (p.mean - p.err.abs(), p.mean + p.err.abs());
                chart
                    .draw_series([
                        PathElement::new(vec![(*x, a), (*x, b)], colour.stroke_width(2)),
                        PathElement::new(
                            vec![(*x - cap, a), (*x + cap, a)],
                            colour.stroke_width(2),
                        ),
                        PathElement::new(
                            vec![(*x - cap, b), (*x + cap, b)],
                            colour.stroke_width(2),
                        ),
                    ])
                    .map_err(s)?;
            }
            chart
                .draw_series(
                    pts.iter()
                        .map(|(x, p)| Circle::new((*x, p.mean), 4, colour.filled())),
                )
                .map_err(s)?;
        }
        Ok(())
    })
}

/// Bar chart of one value per index (e.g. mean γ per latent dim) with a dashed threshold line.
pub fn bar_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    values: &[f64],
    threshold: Option<f64>,
) -> Result<(), PlotError> {
    if values.is_empty() {
        return Err(PlotError::Input {
            path: path.to_path_buf(),
            message: "no values".into(),
        });
    }
    let n = values.len();
    let top = values
        .iter()
        .cloned()
        .filter(|v| v.is_finite())
        .fold(threshold.unwrap_or(0.0), f64::max)
        .max(1e-9)
        * 1.08;
    let size = ((n as u32 * 12 + 140).max(500), 360);
    draw_png(path, size, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(-0.5..(n as f64 - 0.5), 0.0..top)
            .map_err(s)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .label_style((FONT, 11))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(s)?;
        chart
            .draw_series(values.iter().enumerate().map(|(i, &v)| {
                Rectangle::new(
                    [(i as f64 - 0.4, 0.0), (i as f64 + 0.4, v.max(0.0))],
                    TRACE_COLOURS[2].filled(),
                )
            }))
            .map_err(s)?;
        if let Some(t) = threshold {
            chart
                .draw_series(DashedLineSeries::new(
                    [(-0.5, t), (n as f64 - 0.5, t)],
                    6,
                    4,
                    TRACE_COLOURS[0].stroke_width(2),
                ))
                .map_err(s)?;
        }
        Ok(())
    })
}

/// Grid of grey-scale images (values in [0, 1], row-major `side`×`side` each),
/// `n_cols` per row, each pixel drawn as `scale`×`scale`; optional caption per row.
pub fn image_grid(
    path: &Path,
    images: &[f32],
    side: usize,
    n_cols: usize,
    scale: u32,
    row_captions: &[String],
) -> Result<(), PlotError> {
    let per = side * side;
    if per == 0 || n_cols == 0 || images.is_empty() || !images.len().is_multiple_of(per) {
        return Err(PlotError::Input {
            path: path.to_path_buf(),
            message: format!("{} values are not whole {side}×{side} images", images.len()),
        });
    }
    let n = images.len() / per;
    let n_rows = n.div_ceil(n_cols);
    let gap = 4u32;
    let caption_w = if row_captions.is_empty() { 0 } else { 150 };
    let tile = side as u32 * scale;
    let size = (
        caption_w + n_cols as u32 * (tile + gap) + gap,
        n_rows as u32 * (tile + gap) + gap,
    );
    draw_png(path, size, |root| {
        for (i, img) in images.chunks_exact(per).enumerate() {
            let (gr, gc) = ((i / n_cols) as u32, (i % n_cols) as u32);
            let (x0, y0) = (caption_w + gap + gc * (tile + gap), gap + gr * (tile + gap));
            for (p, &v) in img.iter().enumerate() {
                let g = (255.0 * (1.0 - f64::from(v).clamp(0.0, 1.0))).round() as u8;
                let (px, py) = (
                    x0 + (p % side) as u32 * scale,
                    y0 + (p / side) as u32 * scale,
                );
                root.draw(&Rectangle::new(
                    [
                        (px as i32, py as i32),
                        ((px + scale) as i32, (py + scale) as i32),
                    ],
                    RGBColor(g, g, g).filled(),
                ))
                .map_err(s)?;
            }
            root.draw(&Rectangle::new(
                [
                    (x0 as i32 - 1, y0 as i32 - 1),
                    ((x0 + tile) as i32, (y0 + tile) as i32),
                ],
                RGBColor(170, 170, 170).stroke_width(1),
            ))
            .map_err(s)?;
        }
        for (r, caption) in row_captions.iter().enumerate().take(n_rows) {
            let y = (gap + r as u32 * (tile + gap) + tile / 2) as i32;
            root.draw(&Text::new(
                caption.clone(),
                (6, y),
                TextStyle::from((FONT, 13).into_font()).pos(Pos::new(HPos::Left, VPos::Center)),
            ))
            .map_err(s)?;
        }
        Ok(())
    })
}

/// One row of a [`signal_rows`] figure: panels sharing a y range and label.
pub struct SignalRow<'a> {
    pub panels: Vec<SignalPanel<'a>>,
    pub y_label: &'a str,
    /// Colour the traces along a gradient (ordered values such as a traversal) instead of
    /// with distinct colours.
    pub gradient: bool,
}

/// Rows of signal panels, each row with its own y range (e.g. spectra above, their
/// differences below); every panel has a legend.
pub fn signal_rows(
    path: &Path,
    title: &str,
    rows: &[SignalRow],
    x_axis: XAxis<'_>,
) -> Result<(), PlotError> {
    let n_cols = rows.iter().map(|r| r.panels.len()).max().unwrap_or(0);
    if n_cols == 0 {
        return Err(PlotError::Input {
            path: path.to_path_buf(),
            message: "no panels".into(),
        });
    }
    let size = (n_cols as u32 * 360 + 20, rows.len() as u32 * 250 + 60);
    draw_png(path, size, |root| {
        let root = root.titled(title, (FONT, 18)).map_err(s)?;
        for (row_area, row) in root.split_evenly((rows.len(), 1)).iter().zip(rows) {
            let (y_range, x_end) = shared_ranges(row.panels.iter().flat_map(|p| &p.traces), x_axis);
            for (area, panel) in row_area.split_evenly((1, n_cols)).iter().zip(&row.panels) {
                let n = panel.traces.len();
                trace_panel(
                    area,
                    &panel.title,
                    &panel.traces,
                    (x_axis, x_end),
                    y_range.clone(),
                    (row.y_label, 48),
                    |k| {
                        if row.gradient {
                            // Stop short of viridis' pale yellow end, which vanishes on white.
                            viridis(0.85 * k as f64 / (n.max(2) - 1) as f64)
                        } else {
                            TRACE_COLOURS[k % TRACE_COLOURS.len()]
                        }
                    },
                )?;
            }
        }
        Ok(())
    })
}

/// How a [`Tile`]'s values become colours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shade {
    /// [0, 1] as white → black (ink), like [`image_grid`].
    Ink,
    /// [−1, 1] as blue → white → red, for differences of two images.
    Signed,
}

/// One captioned image of an [`image_rows`] figure.
pub struct Tile {
    pub caption: String,
    /// `side × side` values, row-major.
    pub pixels: Vec<f32>,
    pub shade: Shade,
}

/// One captioned row of tiles.
pub struct ImageRow {
    pub caption: String,
    pub tiles: Vec<Tile>,
}

fn shade_colour(v: f32, shade: Shade) -> RGBColor {
    let v = f64::from(v);
    match shade {
        Shade::Ink => {
            let g = (255.0 * (1.0 - v.clamp(0.0, 1.0))).round() as u8;
            RGBColor(g, g, g)
        }
        Shade::Signed => {
            let t = v.clamp(-1.0, 1.0);
            let fade = |a: f64| (255.0 - (255.0 - a) * t.abs()).round() as u8;
            if t >= 0.0 {
                RGBColor(fade(200.0), fade(30.0), fade(30.0))
            } else {
                RGBColor(fade(30.0), fade(70.0), fade(200.0))
            }
        }
    }
}

/// Rows of captioned images (each `side × side`), a caption above every tile and one
/// left of every row; signed tiles show increases red and decreases blue.
pub fn image_rows(
    path: &Path,
    title: &str,
    rows: &[ImageRow],
    side: usize,
    scale: u32,
) -> Result<(), PlotError> {
    let per = side * side;
    let n_cols = rows.iter().map(|r| r.tiles.len()).max().unwrap_or(0);
    if per == 0 || n_cols == 0 {
        return Err(PlotError::Input {
            path: path.to_path_buf(),
            message: "no images".into(),
        });
    }
    if let Some(t) = rows
        .iter()
        .flat_map(|r| &r.tiles)
        .find(|t| t.pixels.len() != per)
    {
        return Err(PlotError::Input {
            path: path.to_path_buf(),
            message: format!(
                "tile {:?} has {} values, not {side}×{side}",
                t.caption,
                t.pixels.len()
            ),
        });
    }
    let (gap, caption_h, row_caption_w, title_h) = (12u32, 30u32, 190u32, 34u32);
    let tile = side as u32 * scale;
    let size = (
        row_caption_w + n_cols as u32 * (tile + gap) + gap,
        title_h + rows.len() as u32 * (tile + caption_h + gap) + gap,
    );
    draw_png(path, size, |root| {
        root.draw(&Text::new(
            title.to_string(),
            (10, 8),
            TextStyle::from((FONT, 16).into_font()),
        ))
        .map_err(s)?;
        for (r, row) in rows.iter().enumerate() {
            let y_top = title_h + r as u32 * (tile + caption_h + gap);
            let y0 = y_top + caption_h;
            for (line, text) in row.caption.lines().enumerate() {
                root.draw(&Text::new(
                    text.to_string(),
                    (8, (y0 + tile / 2) as i32 - 8 + 16 * line as i32),
                    TextStyle::from((FONT, 13).into_font()).pos(Pos::new(HPos::Left, VPos::Center)),
                ))
                .map_err(s)?;
            }
            for (c, t) in row.tiles.iter().enumerate() {
                let x0 = row_caption_w + gap + c as u32 * (tile + gap);
                for (line, text) in t.caption.lines().take(2).enumerate() {
                    root.draw(&Text::new(
                        text.to_string(),
                        (
                            (x0 + tile / 2) as i32,
                            (y_top + 2 + 13 * line as u32) as i32,
                        ),
                        TextStyle::from((FONT, 11).into_font())
                            .pos(Pos::new(HPos::Center, VPos::Top)),
                    ))
                    .map_err(s)?;
                }
                for (p, &v) in t.pixels.iter().enumerate() {
                    let (px, py) = (
                        x0 + (p % side) as u32 * scale,
                        y0 + (p / side) as u32 * scale,
                    );
                    root.draw(&Rectangle::new(
                        [
                            (px as i32, py as i32),
                            ((px + scale) as i32, (py + scale) as i32),
                        ],
                        shade_colour(v, t.shade).filled(),
                    ))
                    .map_err(s)?;
                }
                root.draw(&Rectangle::new(
                    [
                        (x0 as i32 - 1, y0 as i32 - 1),
                        ((x0 + tile) as i32, (y0 + tile) as i32),
                    ],
                    RGBColor(170, 170, 170).stroke_width(1),
                ))
                .map_err(s)?;
            }
        }
        Ok(())
    })
}

/// One panel of a [`category_panels`] figure: per category, the values of its runs.
pub struct CategoryPanel<'a> {
    pub title: &'a str,
    pub y_label: &'a str,
    /// `values[c]`: the runs (e.g. seeds) of category `c`.
    pub values: Vec<Vec<f64>>,
}

/// Panels (`n_cols` per row) with categories along x: every run as a grey dot, the mean
/// as a coloured dot with ±1 sd bars, the categories' labels under each panel.
pub fn category_panels(
    path: &Path,
    title: &str,
    categories: &[String],
    panels: &[CategoryPanel],
    n_cols: usize,
) -> Result<(), PlotError> {
    if categories.is_empty() || panels.is_empty() || n_cols == 0 {
        return Err(PlotError::Input {
            path: path.to_path_buf(),
            message: "no categories or panels".into(),
        });
    }
    if let Some(p) = panels.iter().find(|p| p.values.len() != categories.len()) {
        return Err(PlotError::Input {
            path: path.to_path_buf(),
            message: format!(
                "panel {:?} has {} categories, expected {}",
                p.title,
                p.values.len(),
                categories.len()
            ),
        });
    }
    let n_rows = panels.len().div_ceil(n_cols);
    let n = categories.len();
    let size = (
        (n_cols as u32 * (n as u32 * 70 + 120)).max(600),
        n_rows as u32 * 330 + 50,
    );
    draw_png(path, size, |root| {
        let root = root.titled(title, (FONT, 18)).map_err(s)?;
        for (area, panel) in root.split_evenly((n_rows, n_cols)).iter().zip(panels) {
            let finite: Vec<f64> = panel
                .values
                .iter()
                .flatten()
                .copied()
                .filter(|v| v.is_finite())
                .collect();
            let (mut lo, mut hi) = finite
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                    (a.min(v), b.max(v))
                });
            if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
                lo -= 1.0;
                hi += 1.0;
            }
            let pad = 0.1 * (hi - lo);
            let mut chart = ChartBuilder::on(area)
                .caption(panel.title, (FONT, 14))
                .margin(8)
                .x_label_area_size(46)
                .y_label_area_size(56)
                .build_cartesian_2d(-0.5..(n as f64 - 0.5), (lo - pad)..(hi + pad))
                .map_err(s)?;
            chart
                .configure_mesh()
                .x_labels(0)
                .y_desc(panel.y_label)
                .label_style((FONT, 11))
                .light_line_style(RGBColor(235, 235, 235))
                .draw()
                .map_err(s)?;
            for (c, label) in categories.iter().enumerate() {
                let (ax, ay) = chart.backend_coord(&(c as f64, lo - pad));
                let (bx, by) = area.get_base_pixel();
                let style =
                    TextStyle::from((FONT, 10).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
                let lines = two_lines(label);
                for (i, line) in lines.iter().enumerate() {
                    area.draw(&Text::new(
                        line.clone(),
                        (ax - bx, ay - by + 6 + 12 * i as i32),
                        style.clone(),
                    ))
                    .map_err(s)?;
                }
            }
            let colour = TRACE_COLOURS[2];
            for (c, vals) in panel.values.iter().enumerate() {
                let x = c as f64;
                let runs: Vec<f64> = vals.iter().copied().filter(|v| v.is_finite()).collect();
                chart
                    .draw_series(runs.iter().enumerate().map(|(k, &v)| {
                        // Spread the runs a little so equal values stay visible.
                        let dx = 0.12 * (k as f64 - (runs.len() as f64 - 1.0) / 2.0);
                        Circle::new((x + dx, v), 3, RGBColor(150, 150, 150).filled())
                    }))
                    .map_err(s)?;
                if runs.is_empty() {
                    continue;
                }
                let (mean, sd) = crate::eval::metrics::mean_sd(&runs);
                chart
                    .draw_series([
                        PathElement::new(
                            vec![(x + 0.3, mean - sd), (x + 0.3, mean + sd)],
                            colour.stroke_width(2),
                        ),
                        PathElement::new(
                            vec![(x + 0.25, mean - sd), (x + 0.35, mean - sd)],
                            colour.stroke_width(2),
                        ),
                        PathElement::new(
                            vec![(x + 0.25, mean + sd), (x + 0.35, mean + sd)],
                            colour.stroke_width(2),
                        ),
                    ])
                    .map_err(s)?;
                chart
                    .draw_series([Circle::new((x + 0.3, mean), 5, colour.filled())])
                    .map_err(s)?;
            }
        }
        Ok(())
    })
}

/// A label on at most two lines: words go on the first line until it holds about half of
/// the characters (labels of 14 characters or fewer stay on one line).
fn two_lines(label: &str) -> Vec<String> {
    let total = label.chars().count();
    if total <= 14 {
        return vec![label.to_string()];
    }
    let (mut first, mut rest) = (String::new(), Vec::new());
    for word in label.split_whitespace() {
        if rest.is_empty() && (first.is_empty() || first.chars().count() < total / 2) {
            if !first.is_empty() {
                first.push(' ');
            }
            first.push_str(word);
        } else {
            rest.push(word);
        }
    }
    if rest.is_empty() {
        vec![first]
    } else {
        vec![first, rest.join(" ")]
    }
}

#[cfg(test)]
mod tests {
    use super::two_lines;

    #[test]
    fn long_labels_split_at_a_word_near_the_middle() {
        assert_eq!(two_lines("+ α 0.3"), vec!["+ α 0.3"]);
        assert_eq!(
            two_lines("+ spikes start on (bias +3)"),
            vec!["+ spikes start", "on (bias +3)"]
        );
        assert_eq!(
            two_lines("averyveryverylongword"),
            vec!["averyveryverylongword"]
        );
    }
}
