//! Learning-curve figures (PNG and SVG) through plotters, with an embedded font (DejaVu Sans), so
//! no system font library is needed.

use std::path::Path;
use std::sync::Once;

use anyhow::Context;

use plotters::coord::Shift;
use plotters::prelude::*;

/// Image size in pixels.
pub const SIZE: (u32, u32) = (960, 600);

/// One curve: its label and `(step, mean, std)` points in increasing step order.
pub struct Series {
    /// Legend text.
    pub label: String,
    /// `(step, mean, std)`.
    pub points: Vec<(f64, f64, f64)>,
}

/// A published curve drawn behind the series: its label and `(step, mean, min, max)` points in
/// increasing step order.
pub struct Band {
    /// Legend text.
    pub label: String,
    /// `(step, mean, min, max)`.
    pub points: Vec<(f64, f64, f64, f64)>,
}

/// Colours of the published bands (greys and a muted brown), drawn under the series' colours.
const BAND_COLORS: [RGBColor; 3] = [
    RGBColor(90, 90, 90),
    RGBColor(150, 120, 60),
    RGBColor(60, 100, 110),
];

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is compiled in; registering it cannot fail for valid TTF bytes.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    y_label: &str,
    series: &[Series],
    bands: &[Band],
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let pts = series.iter().flat_map(|s| s.points.iter());
    // The x range is that of our curves; published curves (often longer) are cut to it.
    let x_max = if series.iter().all(|s| s.points.is_empty()) {
        bands
            .iter()
            .flat_map(|b| b.points.iter())
            .map(|p| p.0)
            .fold(1.0, f64::max)
    } else {
        pts.clone().map(|p| p.0).fold(1.0, f64::max)
    };
    let bands: Vec<Band> = bands
        .iter()
        .map(|b| Band {
            label: b.label.clone(),
            points: b.points.iter().copied().filter(|p| p.0 <= x_max).collect(),
        })
        .collect();
    let band_pts = bands.iter().flat_map(|b| b.points.iter());
    let lo = pts
        .clone()
        .map(|p| p.1 - p.2)
        .chain(band_pts.clone().map(|p| p.2))
        .fold(f64::INFINITY, f64::min);
    let hi = pts
        .map(|p| p.1 + p.2)
        .chain(band_pts.map(|p| p.3))
        .fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if lo.is_finite() && hi > lo {
        (lo, hi)
    } else {
        (0.0, 1.0)
    };
    let pad = 0.05 * (hi - lo);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 26))
        .margin(14)
        .x_label_area_size(46)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, (lo - pad)..(hi + pad))?;
    chart
        .configure_mesh()
        .x_desc("environment steps")
        .y_desc(y_label)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    for (i, b) in bands.iter().enumerate() {
        let color = BAND_COLORS[i % BAND_COLORS.len()];
        let area: Vec<(f64, f64)> = b
            .points
            .iter()
            .map(|p| (p.0, p.3))
            .chain(b.points.iter().rev().map(|p| (p.0, p.2)))
            .collect();
        chart.draw_series(std::iter::once(Polygon::new(area, color.mix(0.15))))?;
        chart
            .draw_series(DashedLineSeries::new(
                b.points.iter().map(|p| (p.0, p.1)),
                8,
                5,
                color.stroke_width(2),
            ))?
            .label(format!("{}: mean, min–max", b.label))
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 24, y + 5)], color.mix(0.35).filled())
            });
    }
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let band: Vec<(f64, f64)> = s
            .points
            .iter()
            .map(|p| (p.0, p.1 + p.2))
            .chain(s.points.iter().rev().map(|p| (p.0, p.1 - p.2)))
            .collect();
        chart.draw_series(std::iter::once(Polygon::new(band, color.mix(0.18))))?;
        chart
            .draw_series(LineSeries::new(
                s.points.iter().map(|p| (p.0, p.1)),
                color.stroke_width(2),
            ))?
            .label(s.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .draw()?;
    root.present()?;
    Ok(())
}

/// Draws the curves (mean line, ±std band), behind them the published bands (dashed mean line,
/// min–max area), to `<stem>.png` and `<stem>.svg`.
pub fn curves(
    stem: &Path,
    title: &str,
    y_label: &str,
    series: &[Series],
    bands: &[Band],
) -> anyhow::Result<()> {
    register_font();
    let png = stem.with_extension("png");
    let svg = stem.with_extension("svg");
    draw(
        BitMapBackend::new(&png, SIZE).into_drawing_area(),
        title,
        y_label,
        series,
        bands,
    )
    .with_context(|| png.display().to_string())?;
    draw(
        SVGBackend::new(&svg, SIZE).into_drawing_area(),
        title,
        y_label,
        series,
        bands,
    )
    .with_context(|| svg.display().to_string())
}
