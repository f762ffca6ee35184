//! `benchmarks.png`: unrecovered loss and p99 added latency against the
//! number of subscribers (S1), Convene and Janus. Drawn with plotters'
//! bitmap backend; text uses DejaVu Sans from the system
//! (`fonts-dejavu-core`, installed by benches/compare-janus.sh).

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{Result, anyhow};
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};
use serde_json::Value;

use crate::compare::points;

const FONTS: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
];

fn fonts() -> Result<()> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        for f in FONTS {
            if let Ok(bytes) = std::fs::read(f) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                return register_font("sans-serif", FontStyle::Normal, bytes).is_ok();
            }
        }
        false
    });
    if ok {
        Ok(())
    } else {
        Err(anyhow!(
            "no TrueType font found ({}); apt-get install fonts-dejavu-core",
            FONTS.join(", ")
        ))
    }
}

fn e<E: std::fmt::Debug>(x: E) -> anyhow::Error {
    anyhow!("plotters: {x:?}")
}

/// Draws the two panels for `convene` and `janus` (runs as JSON).
pub fn draw(path: &Path, convene: &Value, janus: &Value) -> Result<()> {
    fonts()?;
    let series = [
        ("Convene", points(convene), RGBColor(0, 114, 178)),
        ("Janus", points(janus), RGBColor(213, 94, 0)),
    ];
    let max_subs = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.subscribers))
        .fold(1.0, f64::max);
    let max_loss = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.loss * 100.0))
        .fold(0.2, f64::max);
    let max_p99 = series
        .iter()
        .flat_map(|s| s.1.iter().filter_map(|p| p.p99.map(|u| u / 1000.0)))
        .fold(30.0, f64::max);
    let root = BitMapBackend::new(path, (1280, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(e)?;
    let (left, right) = root.split_horizontally(640);

    let mut loss = ChartBuilder::on(&left)
        .caption("Unrecovered loss (S1)", ("sans-serif", 22))
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_subs * 1.05, 0.0..max_loss * 1.1)
        .map_err(e)?;
    loss.configure_mesh()
        .x_desc("subscribers (1 publisher, VP8 2.5 Mbit/s + Opus)")
        .y_desc("loss %")
        .draw()
        .map_err(e)?;
    loss.draw_series(LineSeries::new(
        [(0.0, 0.1), (max_subs * 1.05, 0.1)],
        BLACK.mix(0.4),
    ))
    .map_err(e)?
    .label("0.1 % limit")
    .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], BLACK.mix(0.4)));
    for (name, pts, color) in &series {
        let v: Vec<(f64, f64)> = pts
            .iter()
            .filter(|p| p.valid)
            .map(|p| (p.subscribers, p.loss * 100.0))
            .collect();
        let c = *color;
        loss.draw_series(LineSeries::new(v.clone(), c.stroke_width(2)))
            .map_err(e)?
            .label(*name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], c.stroke_width(2)));
        loss.draw_series(v.iter().map(|&(x, y)| Circle::new((x, y), 4, c.filled())))
            .map_err(e)?;
    }
    loss.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(e)?;

    let mut lat = ChartBuilder::on(&right)
        .caption("p99 added latency (S1)", ("sans-serif", 22))
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_subs * 1.05, (0.1..max_p99 * 1.5).log_scale())
        .map_err(e)?;
    lat.configure_mesh()
        .x_desc("subscribers")
        .y_desc("p99 latency, ms (log)")
        .draw()
        .map_err(e)?;
    lat.draw_series(LineSeries::new(
        [(0.0, 20.0), (max_subs * 1.05, 20.0)],
        BLACK.mix(0.4),
    ))
    .map_err(e)?
    .label("20 ms limit")
    .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], BLACK.mix(0.4)));
    for (name, pts, color) in &series {
        let v: Vec<(f64, f64)> = pts
            .iter()
            .filter(|p| p.valid)
            .filter_map(|p| Some((p.subscribers, (p.p99? / 1000.0).max(0.1))))
            .collect();
        let c = *color;
        lat.draw_series(LineSeries::new(v.clone(), c.stroke_width(2)))
            .map_err(e)?
            .label(*name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], c.stroke_width(2)));
        lat.draw_series(v.iter().map(|&(x, y)| Circle::new((x, y), 4, c.filled())))
            .map_err(e)?;
    }
    lat.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(e)?;
    root.present().map_err(e)?;
    Ok(())
}
