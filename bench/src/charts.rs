//! SVG charts of the saved sections (`wsbench report`): each markdown table with a throughput
//! or memory column gets a chart under `bench/charts/`, linked in RESULTS.md right after it.
//!
//! The charts are drawn from the tables as saved (the numbers are read back from the cells:
//! `84.0 k`, `1.09 M`, `3422 B (3.34 KiB)`, `417.6 KiB`), so any saved section can be charted
//! again without re-running it. Text is written as SVG `<text>` (plotters' SVG backend without
//! fonts: sizes are estimated, the viewer renders the glyphs).

use std::ops::Range;
use std::path::Path;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::prelude::*;

/// One table of a section, as written by `Table::render`.
struct MdTable {
    /// The heading above it (without `#`s and backticks).
    title: String,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    /// Index of its last line in the section text.
    last_line: usize,
}

fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner.split('|').map(|c| c.trim().replace("**", "")).collect()
}

fn tables(text: &str) -> Vec<MdTable> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut title = String::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.starts_with('#') {
            title = line.trim_start_matches('#').trim().replace('`', "");
        }
        let is_table = line.starts_with('|') && lines.get(i + 1).is_some_and(|l| l.starts_with("|---"));
        if !is_table {
            i += 1;
            continue;
        }
        let header = cells(line);
        let mut rows = Vec::new();
        let mut j = i + 2;
        while j < lines.len() && lines[j].starts_with('|') {
            rows.push(cells(lines[j]));
            j += 1;
        }
        out.push(MdTable { title: title.clone(), header, rows, last_line: j - 1 });
        i = j;
    }
    out
}

/// The number at the start of a cell, scaled by its unit: `84.0 k` (msg/s), `1.23 M/s · …`,
/// `3422 B (3.34 KiB)`, `417.6 KiB`, `120 MB/s`.
fn quantity(cell: &str) -> Option<f64> {
    let mut words = cell.split_whitespace();
    let number: f64 = words.next()?.replace(',', "").parse().ok()?;
    let scale = match words.next().unwrap_or("") {
        u if u.starts_with("KiB") => 1024.0,
        u if u.starts_with("MiB") => 1024.0 * 1024.0,
        u if u.starts_with("GiB") => 1024.0 * 1024.0 * 1024.0,
        u if u.starts_with('k') => 1e3,
        u if u.starts_with('M') && !u.starts_with("MB") => 1e6,
        _ => 1.0,
    };
    Some(number * scale)
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// Messages per second (vertical grouped bars, panels by message size).
    Rate,
    /// MB/s of payload.
    Bandwidth,
    /// Bytes per connection (horizontal grouped bars).
    Memory,
}

/// Which columns of `t` to chart, and how.
fn columns(t: &MdTable) -> Option<(Kind, Vec<usize>)> {
    let is_ratio = |h: &str| h.contains(" / ") || h.contains('÷') || h.contains("best peer");
    let servers: Vec<&str> = crate::echo::Server::ALL.iter().map(|s| s.name()).collect();
    let numeric = |c: usize| {
        let values: Vec<&String> = t.rows.iter().filter_map(|r| r.get(c)).filter(|v| !v.is_empty()).collect();
        !values.is_empty() && values.iter().all(|v| quantity(v).is_some() && !v.contains(" / "))
    };
    let pick = |f: &dyn Fn(&str, usize) -> bool| -> Vec<usize> {
        (1..t.header.len()).filter(|&c| !is_ratio(&t.header[c]) && f(&t.header[c], c)).collect()
    };
    let memory = pick(&|h, c| {
        (h.contains("per connection")
            || h.contains("per idle connection")
            || h.starts_with("heap kept after"))
            && t.rows.iter().any(|r| r.get(c).and_then(|v| quantity(v)).is_some())
    });
    if !memory.is_empty() {
        return Some((Kind::Memory, memory));
    }
    let rate = pick(&|h, c| (h.contains("msg/s") || servers.contains(&h)) && numeric(c));
    if !rate.is_empty() {
        return Some((Kind::Rate, rate));
    }
    let bandwidth =
        pick(&|_, c| numeric(c) && t.rows.iter().all(|r| r.get(c).is_none_or(|v| v.contains("MB/s"))));
    (!bandwidth.is_empty()).then_some((Kind::Bandwidth, bandwidth))
}

/// A series name from a column header: `wsproto msg/s` → `wsproto`.
fn series_name(header: &str) -> String {
    let h = header.split(" msg/s").next().unwrap_or(header);
    let h = h.split(" (µs").next().unwrap_or(h);
    h.trim().to_string()
}

/// One colour per library, the same in every chart.
fn colour(name: &str, index: usize) -> RGBColor {
    let known = [
        ("handrolled", RGBColor(120, 120, 120)),
        ("echo_server", RGBColor(49, 54, 149)),
        ("wsproto-session", RGBColor(69, 117, 180)),
        ("wsproto-whole", RGBColor(116, 173, 209)),
        ("wsproto", RGBColor(33, 102, 172)),
        ("tokio-tungstenite", RGBColor(244, 109, 67)),
        ("tokio-websockets", RGBColor(102, 166, 30)),
        ("fastwebsockets", RGBColor(215, 48, 39)),
        ("yawc", RGBColor(140, 81, 10)),
        ("wtx", RGBColor(197, 27, 125)),
        ("sockudo-ws", RGBColor(230, 171, 2)),
    ];
    if let Some((_, c)) = known.iter().find(|(n, _)| *n == name) {
        return *c;
    }
    // Other variants of ours (fan-out's `wsproto prepared`, …): blues.
    if name.starts_with("wsproto") {
        const BLUES: [RGBColor; 3] = [RGBColor(33, 102, 172), RGBColor(116, 173, 209), RGBColor(49, 54, 149)];
        return BLUES[index % BLUES.len()];
    }
    const OTHERS: [RGBColor; 6] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(23, 190, 207),
    ];
    OTHERS[index % OTHERS.len()]
}

/// `n` categories on an axis, category `i` centred at `i + 0.5`; key points at the centres.
struct Groups(usize);

impl Ranged for Groups {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let span = f64::from(limit.1 - limit.0);
        limit.0 + (span * value / self.0.max(1) as f64).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, _hint: Hint) -> Vec<f64> {
        (0..self.0).map(|i| i as f64 + 0.5).collect()
    }

    fn range(&self) -> Range<f64> {
        0.0..self.0 as f64
    }
}

fn fmt_axis(v: f64, kind: Kind) -> String {
    match kind {
        // Decimal units: the log axis marks powers of ten.
        Kind::Memory if v >= 1e6 => format!("{:.0} MB", v / 1e6),
        Kind::Memory if v >= 1e3 => format!("{:.0} kB", v / 1e3),
        Kind::Memory => format!("{v:.0} B"),
        _ if v >= 1e6 => format!("{:.0} M", v / 1e6),
        _ if v >= 1e3 => format!("{:.0} k", v / 1e3),
        _ => format!("{v:.0}"),
    }
}

/// A log range around the positive values (at least one decade).
fn log_range(values: impl Iterator<Item = f64>) -> Option<Range<f64>> {
    let (lo, hi) = values
        .filter(|v| *v > 0.0 && v.is_finite())
        .fold((f64::INFINITY, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if hi <= 0.0 {
        return None;
    }
    let lo = 10f64.powf((lo / 1.5).log10().floor());
    let hi = (hi * 1.6).max(lo * 10.0);
    Some(lo..hi)
}

type Error = Box<dyn std::error::Error>;

/// A heading without its parenthesised details (the chart's title; the table has them).
fn short_title(title: &str) -> &str {
    title.split(" (").next().unwrap_or(title).trim()
}

/// Grouped vertical bars: one group per row, one bar per series; rows whose label is
/// `<size> w<window> c<conns>` go into one panel per size.
fn draw_rate(path: &Path, t: &MdTable, kind: Kind, cols: &[usize]) -> Result<(), Error> {
    let names: Vec<String> = cols.iter().map(|&c| series_name(&t.header[c])).collect();
    // Panels: (title, rows).
    let mut panels: Vec<(String, Vec<&Vec<String>>)> = Vec::new();
    for row in &t.rows {
        let label = &row[0];
        let key = match label.find(" w") {
            Some(i) if label[i + 2..].starts_with(|c: char| c.is_ascii_digit()) => label[..i].to_string(),
            _ => String::new(),
        };
        match panels.iter_mut().find(|(k, _)| *k == key) {
            Some((_, rows)) => rows.push(row),
            None => panels.push((key, vec![row])),
        }
    }
    let max_groups = panels.iter().map(|(_, r)| r.len()).max().unwrap_or(1);
    let bar_px = 12;
    // Wide enough for the bars and for the longest group label (about 7 px a character).
    let longest = t.rows.iter().map(|r| r[0].chars().count()).max().unwrap_or(0);
    let group_px = (names.len() * bar_px + 14).max(longest * 7 + 12);
    let width = (max_groups * group_px + 160).clamp(640, 2400) as u32;
    // Legend: one swatch per series, wrapped into rows.
    let mut legend = Vec::new();
    let (mut x, mut row) = (20i32, 0i32);
    for name in &names {
        let w = 16 + name.chars().count() as i32 * 7 + 18;
        if x + w > width as i32 - 10 && x > 20 {
            x = 20;
            row += 1;
        }
        legend.push((x, 36 + 18 * row));
        x += w;
    }
    let head = 54 + 18 * row as u32;
    let panel_h = 300u32;
    let height = head + panel_h * panels.len() as u32;
    let root = SVGBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let unit = if kind == Kind::Bandwidth { "MB/s" } else { "messages/s" };
    let (top, body) = root.split_vertically(head);
    top.titled(&format!("{} — {unit}, log scale", short_title(&t.title)), ("sans-serif", 16))?;
    for (k, (name, &(x, y))) in names.iter().zip(&legend).enumerate() {
        let c = colour(name, k);
        top.draw(&Rectangle::new([(x, y), (x + 12, y + 12)], c.filled()))?;
        top.draw(&Text::new(name.clone(), (x + 16, y), ("sans-serif", 12)))?;
    }
    let areas = body.split_evenly((panels.len(), 1));
    for ((key, rows), area) in panels.iter().zip(areas.iter()) {
        let values =
            rows.iter().flat_map(|r| cols.iter().filter_map(|&c| r.get(c).and_then(|v| quantity(v))));
        let Some(y) = log_range(values) else { continue };
        let labels: Vec<String> = rows.iter().map(|r| r[0][key.len()..].trim().to_string()).collect();
        let mut chart = ChartBuilder::on(area)
            .caption(if key.is_empty() { String::new() } else { key.clone() }, ("sans-serif", 14))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(64)
            .build_cartesian_2d(Groups(rows.len()), y.clone().log_scale())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(rows.len())
            .x_label_formatter(&|v| labels.get(v.floor() as usize).cloned().unwrap_or_default())
            .y_label_formatter(&|v| fmt_axis(*v, kind))
            .y_labels(6)
            .label_style(("sans-serif", 11))
            .draw()?;
        let n = cols.len() as f64;
        for (k, &c) in cols.iter().enumerate() {
            let colour = colour(&names[k], k);
            let bars = rows.iter().enumerate().filter_map(|(g, r)| {
                let v = r.get(c).and_then(|v| quantity(v)).filter(|v| *v > 0.0)?;
                let x0 = g as f64 + 0.08 + 0.84 * k as f64 / n;
                let x1 = g as f64 + 0.08 + 0.84 * (k as f64 + 1.0) / n;
                Some(Rectangle::new([(x0, y.start), (x1, v)], colour.filled()))
            });
            chart.draw_series(bars)?;
        }
    }
    root.present()?;
    Ok(())
}

/// Grouped horizontal bars: one group per row (server or configuration), one bar per column.
fn draw_memory(path: &Path, t: &MdTable, cols: &[usize]) -> Result<(), Error> {
    let names: Vec<String> = cols.iter().map(|&c| t.header[c].clone()).collect();
    let label = |s: &str| -> String {
        let s = s.trim();
        if s.chars().count() > 58 {
            format!("{}…", s.chars().take(57).collect::<String>())
        } else {
            s.to_string()
        }
    };
    let labels: Vec<String> = t.rows.iter().rev().map(|r| label(&r[0])).collect();
    let values = t.rows.iter().flat_map(|r| cols.iter().filter_map(|&c| r.get(c).and_then(|v| quantity(v))));
    let Some(x) = log_range(values) else { return Ok(()) };
    let group_h = (cols.len() * 11 + 8) as u32;
    let legend_h = 28 + 18 * names.len() as u32;
    let height = legend_h + 60 + group_h * t.rows.len() as u32;
    let root = SVGBackend::new(path, (1100, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, body) = root.split_vertically(legend_h);
    top.titled(&format!("{} — bytes per connection, log scale", short_title(&t.title)), ("sans-serif", 16))?;
    for (k, name) in names.iter().enumerate() {
        let c = colour("", k);
        let y = 28 + 18 * k as i32;
        top.draw(&Rectangle::new([(20, y), (32, y + 12)], c.filled()))?;
        top.draw(&Text::new(name.clone(), (38, y), ("sans-serif", 12)))?;
    }
    let mut chart = ChartBuilder::on(&body)
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(
            labels.iter().map(|l| l.chars().count() as u32 * 6 + 24).max().unwrap_or(100).min(370),
        )
        .build_cartesian_2d(x.clone().log_scale(), Groups(t.rows.len()))?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(t.rows.len())
        .y_label_formatter(&|v| labels.get(v.floor() as usize).cloned().unwrap_or_default())
        .x_label_formatter(&|v| fmt_axis(*v, Kind::Memory))
        .x_labels(8)
        .label_style(("sans-serif", 11))
        .draw()?;
    let n = cols.len() as f64;
    let rows = t.rows.len();
    for (k, &c) in cols.iter().enumerate() {
        let colour = colour("", k);
        let bars = t.rows.iter().enumerate().filter_map(|(i, r)| {
            let v = r.get(c).and_then(|v| quantity(v)).filter(|v| *v > 0.0)?;
            // Row 0 at the top; the first column the top bar of its group.
            let g = (rows - 1 - i) as f64;
            let y1 = g + 0.92 - 0.84 * k as f64 / n;
            let y0 = g + 0.92 - 0.84 * (k as f64 + 1.0) / n;
            Some(Rectangle::new([(x.start, y0), (v, y1)], colour.filled()))
        });
        chart.draw_series(bars)?;
    }
    root.present()?;
    Ok(())
}

/// `text` with a chart image after each chartable table, the charts written into `dir` (as
/// `<section>.svg`, then `<section>-2.svg`, …) and linked relative to RESULTS.md.
pub fn with_charts(section: &str, text: &str, dir: &Path) -> String {
    let mut after: Vec<(usize, String)> = Vec::new();
    let mut all = tables(text);
    // Tables under one heading (plain and compressed fan-out, …): each title gets the table's
    // own name, the start of its first header cell.
    let titles: Vec<String> = all.iter().map(|t| t.title.clone()).collect();
    for t in &mut all {
        let name = t.header[0].split(':').next().unwrap_or_default().trim().to_string();
        if titles.iter().filter(|x| **x == t.title).count() > 1 && !name.is_empty() {
            t.title = format!("{}: {name}", short_title(&t.title));
        }
    }
    for t in all {
        let Some((kind, cols)) = columns(&t) else { continue };
        let file = if after.is_empty() {
            format!("{section}.svg")
        } else {
            format!("{section}-{}.svg", after.len() + 1)
        };
        let path = dir.join(&file);
        let drawn = match kind {
            Kind::Memory => draw_memory(&path, &t, &cols),
            _ => draw_rate(&path, &t, kind, &cols),
        };
        match drawn {
            Ok(()) => after
                .push((t.last_line, format!("\n![{}](charts/{file})\n", t.title.replace(['[', ']'], "")))),
            Err(e) => eprintln!("chart {file}: {e}"),
        }
    }
    let mut out = String::with_capacity(text.len() + 256);
    for (i, line) in text.lines().enumerate() {
        out.push_str(line);
        out.push('\n');
        for (_, link) in after.iter().filter(|(l, _)| *l == i) {
            out.push_str(link);
        }
    }
    out
}

/// Removes the charts of an earlier report (a table may have gone).
pub fn clear(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.path().extension().is_some_and(|x| x == "svg") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(quantity("84.0 k"), Some(84_000.0));
        assert_eq!(quantity("1.09 M"), Some(1_090_000.0));
        assert_eq!(quantity("899"), Some(899.0));
        assert_eq!(quantity("3422 B (3.34 KiB)"), Some(3422.0));
        assert_eq!(quantity("417.6 KiB"), Some(417.6 * 1024.0));
        assert_eq!(quantity("1.23 M/s · 1.2 GB/s"), Some(1_230_000.0));
        assert_eq!(quantity("120 MB/s"), Some(120.0));
        assert_eq!(quantity("not counted"), None);
    }

    #[test]
    fn tables_and_links() {
        let text = "## Echo\n\nintro\n\n| echo: size, window, conns | a msg/s | b msg/s | a / best peer |\n|---|---|---|---|\n| 16 B w1 c1 | 1.0 k | 2.0 k | 0.50× (b) |\n| 1 KiB w1 c1 | 900 | 1.1 k | 0.82× (b) |\n\n_run_\n";
        let t = tables(text);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].title, "Echo");
        let (kind, cols) = columns(&t[0]).expect("chartable");
        assert!(kind == Kind::Rate && cols == vec![1, 2]);
        let dir = std::env::temp_dir().join(format!("wsbench-charts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let out = with_charts("echo", text, &dir);
        assert!(
            out.contains("| 1 KiB w1 c1 | 900 | 1.1 k | 0.82× (b) |\n\n![Echo](charts/echo.svg)\n\n_run_")
        );
        let svg = std::fs::read_to_string(dir.join("echo.svg")).expect("svg");
        assert!(svg.starts_with("<svg") && svg.contains("16 B"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
