//! `yt8m plot`: training curves of one or more runs as a PNG (plotters, bitmap backend).
//!
//! Reads each run's `metrics.jsonl` ([`crate::train::read_log`]) — the same records the
//! TensorBoard files hold — so a plot needs neither TensorBoard nor Python (MMAction2's
//! `analyze_logs.py plot_curve` is the model). Text uses DejaVu Sans Mono, embedded in the
//! binary (`assets/fonts`, Bitstream Vera / DejaVu licence), so no system font is needed.
//!
//! A `--resume` after a crash may repeat steps that were logged but not checkpointed: at each
//! `resume` record, points logged past its step (and epochs past its epoch) are dropped, so the
//! curve shows what the final weights went through.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::train::{LogRecord, read_log};

/// A curve that can be drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Metric {
    /// Training loss per video at each logged step (x: global step).
    Loss,
    /// Mean training loss per video of each epoch (x: epoch).
    EpochLoss,
    /// Validation GAP (x: epoch).
    Gap,
    /// Validation Hit@1 (x: epoch).
    HitAtOne,
    /// Validation PERR (x: epoch).
    Perr,
    /// Validation mAP (x: epoch).
    Map,
    /// Validation loss per video (x: epoch).
    ValidLoss,
    /// Learning rate (x: global step).
    Lr,
    /// Global gradient norm before clipping (x: global step).
    GradNorm,
    /// Training throughput (x: global step).
    SamplesPerS,
    /// Share of time spent waiting for data (x: global step).
    DataWait,
}

impl Metric {
    fn title(self) -> &'static str {
        match self {
            Metric::Loss => "train loss per video",
            Metric::EpochLoss => "epoch train loss per video",
            Metric::Gap => "valid GAP",
            Metric::HitAtOne => "valid Hit@1",
            Metric::Perr => "valid PERR",
            Metric::Map => "valid mAP",
            Metric::ValidLoss => "valid loss per video",
            Metric::Lr => "learning rate",
            Metric::GradNorm => "gradient norm",
            Metric::SamplesPerS => "samples/s",
            Metric::DataWait => "data wait share",
        }
    }

    /// The y axis: what is measured, in which unit.
    fn y_desc(self) -> &'static str {
        match self {
            Metric::Loss | Metric::EpochLoss | Metric::ValidLoss => {
                "loss per video (nats, summed over classes)"
            }
            Metric::Gap | Metric::HitAtOne | Metric::Perr | Metric::Map => "score (0 to 1)",
            Metric::Lr => "learning rate",
            Metric::GradNorm => "L2 norm of all gradients",
            Metric::SamplesPerS => "videos per second",
            Metric::DataWait => "share of the interval (0 to 1)",
        }
    }

    fn by_epoch(self) -> bool {
        matches!(
            self,
            Metric::EpochLoss
                | Metric::Gap
                | Metric::HitAtOne
                | Metric::Perr
                | Metric::Map
                | Metric::ValidLoss
        )
    }

    fn higher_is_better(self) -> bool {
        matches!(
            self,
            Metric::Gap | Metric::HitAtOne | Metric::Perr | Metric::Map | Metric::SamplesPerS
        )
    }

    fn is_valid(self) -> bool {
        self.by_epoch() && self != Metric::EpochLoss
    }
}

/// What to draw and where.
#[derive(Debug, Clone)]
pub struct PlotOptions {
    pub runs: Vec<PathBuf>,
    pub out: PathBuf,
    /// One panel per metric (default: loss and GAP): side by side up to three, else in a
    /// grid of at most three columns.
    pub metrics: Vec<Metric>,
    /// Size of one panel in pixels.
    pub panel: (u32, u32),
}

/// What was drawn: per metric, the number of points per run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlotSummary {
    pub out: PathBuf,
    pub width: u32,
    pub height: u32,
    pub points: Vec<(String, Vec<usize>)>,
}

/// One run's points of one metric, x ascending.
fn series(records: &[LogRecord], m: Metric) -> Vec<(f64, f64)> {
    // (x, y, step or epoch used to drop repeated points at a resume)
    let mut pts: Vec<(f64, f64)> = Vec::new();
    for r in records {
        match r {
            LogRecord::Resume {
                epoch, global_step, ..
            } => {
                let cut = if m.by_epoch() {
                    *epoch as f64
                } else {
                    *global_step as f64
                };
                pts.retain(|(x, _)| *x <= cut);
            }
            LogRecord::TrainStep {
                global_step,
                loss_per_video,
                lr,
                grad_norm,
                samples_per_s,
                data_wait_share,
                ..
            } if !m.by_epoch() => {
                let y = match m {
                    Metric::Loss => Some(*loss_per_video),
                    Metric::Lr => Some(*lr),
                    Metric::GradNorm => *grad_norm,
                    Metric::SamplesPerS => Some(*samples_per_s),
                    Metric::DataWait => Some(*data_wait_share),
                    _ => None,
                };
                if let Some(y) = y {
                    pts.push((*global_step as f64, y));
                }
            }
            LogRecord::Epoch {
                epoch,
                train_loss_per_video,
                valid,
                ..
            } if m.by_epoch() => {
                let y = match (m, valid) {
                    (Metric::EpochLoss, _) => Some(*train_loss_per_video),
                    (Metric::Gap, Some(v)) => Some(v.gap),
                    (Metric::HitAtOne, Some(v)) => Some(v.hit_at_one),
                    (Metric::Perr, Some(v)) => Some(v.perr),
                    (Metric::Map, Some(v)) => v.map,
                    (Metric::ValidLoss, Some(v)) => Some(v.loss),
                    _ => None,
                };
                if let Some(y) = y {
                    pts.push((*epoch as f64, y));
                }
            }
            _ => {}
        }
    }
    // Non-finite values (a diverged run) cannot be placed on an axis; the rest still are.
    pts.retain(|(x, y)| x.is_finite() && y.is_finite());
    pts
}

/// Legend names: the runs' directory names, or their whole paths where two share a name.
fn labels(runs: &[PathBuf]) -> Vec<String> {
    let short: Vec<String> = runs
        .iter()
        .map(|r| {
            r.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| r.display().to_string())
        })
        .collect();
    short
        .iter()
        .zip(runs)
        .map(|(s, r)| {
            if short.iter().filter(|t| *t == s).count() > 1 {
                r.display().to_string()
            } else {
                s.clone()
            }
        })
        .collect()
}

const FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSansMono.ttf");

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The font is part of the binary; a failure here is a build defect, not an input error.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

fn draw_err<E: std::fmt::Display>(out: &Path) -> impl Fn(E) -> Error + '_ {
    move |e| Error::Internal(format!("{}: drawing the plot failed: {e}", out.display()))
}

/// Reads the runs' logs and draws the chosen metrics, one panel each, runs overlaid.
pub fn plot(o: &PlotOptions) -> Result<PlotSummary> {
    if o.runs.is_empty() {
        return Err(Error::Invalid(
            "yt8m plot needs at least one run directory".into(),
        ));
    }
    if o.panel.0 < 200 || o.panel.1 < 150 || o.panel.0 > 8000 || o.panel.1 > 8000 {
        return Err(Error::Invalid(format!(
            "panel size {}x{} is out of range\n  hint: use between 200x150 and 8000x8000 pixels",
            o.panel.0, o.panel.1
        )));
    }
    let metrics = if o.metrics.is_empty() {
        vec![Metric::Loss, Metric::Gap]
    } else {
        o.metrics.clone()
    };
    let runs = distinct_runs(&o.runs);
    let logs = runs
        .iter()
        .map(|run| {
            let path = run.join("metrics.jsonl");
            if !path.is_file() {
                return Err(Error::NotFound {
                    path: run.display().to_string(),
                    message: "no metrics.jsonl\n  hint: pass run directories written by `yt8m train --out RUN`".into(),
                });
            }
            read_log(&path)
        })
        .collect::<Result<Vec<_>>>()?;
    let names = labels(&runs);
    let all = metric_series(&metrics, &logs, &names)?;
    register_font();
    let (pw, ph) = o.panel;
    let (rows, cols) = grid(metrics.len());
    let (width, height) = (pw * cols as u32, ph * rows as u32);
    if o.out
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
        != Some("png")
    {
        return Err(Error::Invalid(format!(
            "{}: yt8m plot writes PNG\n  hint: name the output *.png",
            o.out.display()
        )));
    }
    // RGB pixels drawn in memory, then one PNG written atomically (no partial image on error).
    let mut rgb = vec![0u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err(&o.out))?;
        let panels = root.split_evenly((rows, cols));
        for ((panel, &m), per_run) in panels.iter().zip(&metrics).zip(&all) {
            draw_panel(panel, m, per_run, &names).map_err(draw_err(&o.out))?;
        }
        root.present().map_err(draw_err(&o.out))?;
    }
    write_png(&o.out, &rgb, width, height)?;
    Ok(PlotSummary {
        out: o.out.clone(),
        width,
        height,
        points: metrics
            .iter()
            .zip(&all)
            .map(|(m, r)| (m.title().to_string(), r.iter().map(Vec::len).collect()))
            .collect(),
    })
}

/// The runs in order, each once: the same run twice (`plot r r`, or `r` and `./r`) would draw
/// one curve under two equal legend entries.
fn distinct_runs(runs: &[PathBuf]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for run in runs {
        let id = std::fs::canonicalize(run).unwrap_or_else(|_| run.clone());
        if seen.insert(id) {
            out.push(run.clone());
        } else {
            tracing::warn!("{} is given twice: drawn once", run.display());
        }
    }
    out
}

/// Per metric, per run, its (x, value) points; a metric no run has is an error that says why.
#[allow(clippy::type_complexity)]
fn metric_series(
    metrics: &[Metric],
    logs: &[Vec<LogRecord>],
    names: &[String],
) -> Result<Vec<Vec<Vec<(f64, f64)>>>> {
    let mut all = Vec::new();
    for &m in metrics {
        let per_run: Vec<_> = logs.iter().map(|l| series(l, m)).collect();
        if per_run.iter().all(|s| s.is_empty()) {
            let hint = if m.is_valid() {
                "validation metrics exist only for runs trained with --validate"
            } else if m == Metric::GradNorm {
                "runs logged before gradient norms were recorded have none"
            } else {
                "train longer than TRAIN.log_interval steps, or choose another --metric"
            };
            return Err(Error::Invalid(format!(
                "no '{}' points in {}\n  hint: {hint}",
                m.title(),
                names.join(", ")
            )));
        }
        all.push(per_run);
    }
    Ok(all)
}

/// (rows, columns) for `n` panels: up to three side by side; more in rows of at most three
/// (five used to make a 3200x480 strip).
fn grid(n: usize) -> (usize, usize) {
    let cols = if n <= 3 {
        n
    } else {
        (n as f64).sqrt().ceil().min(3.0) as usize
    };
    (n.div_ceil(cols), cols)
}

/// `rgb` (`width` x `height`) as a PNG at `out`, written atomically.
fn write_png(out: &Path, rgb: &[u8], width: u32, height: u32) -> Result<()> {
    let mut f = crate::runtime::AtomicFile::create(out)?;
    {
        let mut enc = png::Encoder::new(&mut f, width, height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Best);
        enc.set_adaptive_filter(png::AdaptiveFilterType::Adaptive);
        let mut w = enc.write_header().map_err(draw_err(out))?;
        w.write_image_data(rgb).map_err(draw_err(out))?;
        w.finish().map_err(draw_err(out))?;
    }
    f.commit()
}

/// The panel's x and y ranges over every run's points, with margins so the first and last
/// markers are not cut by the axes (and a non-empty range for a single point).
fn axis_ranges(per_run: &[Vec<(f64, f64)>]) -> (f64, f64, f64, f64) {
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in per_run.iter().flatten() {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x1 <= x0 {
        (x0, x1) = (x0 - 1.0, x1 + 1.0);
    }
    let xpad = 0.02 * (x1 - x0);
    let pad = if y1 > y0 {
        0.05 * (y1 - y0)
    } else {
        y0.abs().max(1e-3) * 0.1
    };
    (x0 - xpad, x1 + xpad, y0 - pad, y1 + pad)
}

fn draw_panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    m: Metric,
    per_run: &[Vec<(f64, f64)>],
    names: &[String],
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let (x0, x1, y0, y1) = axis_ranges(per_run);
    let x_desc = if m.by_epoch() { "epoch" } else { "step" };
    // Enough decimals to tell ticks apart over this range, no more.
    let decimals = (2.0 - (y1 - y0).log10().floor()).clamp(0.0, 8.0) as usize;
    let integer_x = m.by_epoch();
    let mut chart = ChartBuilder::on(area)
        .caption(m.title(), ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(86)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    // Tick labels at 15 px in full black: at 13 px the anti-aliased decimal point of the
    // monospace font came out as a faint grey dot.
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(m.y_desc())
        .label_style(("sans-serif", 15).into_font().color(&BLACK))
        .axis_desc_style(("sans-serif", 14))
        .light_line_style(RGBColor(235, 235, 235))
        .y_label_formatter(&|v| format!("{v:.decimals$}"))
        .x_label_formatter(&|v| {
            if integer_x && (v - v.round()).abs() > 1e-9 {
                String::new() // epochs are whole numbers: no ticks between them
            } else {
                format!("{v:.0}")
            }
        })
        .draw()?;
    for (i, (s, name)) in per_run.iter().zip(names).enumerate() {
        if s.is_empty() {
            continue;
        }
        let colour = Palette99::pick(i).to_rgba();
        let style = colour.stroke_width(2);
        chart
            .draw_series(LineSeries::new(s.iter().copied(), style))?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
        if m.by_epoch() || s.len() <= 40 {
            chart.draw_series(s.iter().map(|&p| Circle::new(p, 3, colour.filled())))?;
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        // Away from where the curves end: losses fall to the lower right, scores rise to the
        // upper right.
        .position(if m.higher_is_better() {
            SeriesLabelPosition::LowerRight
        } else {
            SeriesLabelPosition::UpperRight
        })
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(global_step: usize, loss: f64) -> LogRecord {
        LogRecord::TrainStep {
            epoch: 1,
            step: global_step,
            global_step,
            loss: loss * 8.0,
            loss_per_video: loss,
            lr: 0.1,
            samples_per_s: 10.0,
            data_wait_share: 0.0,
            grad_norm: Some(1.0),
            workers: 1,
        }
    }

    #[test]
    fn a_resume_drops_the_points_its_checkpoint_did_not_keep() {
        // Steps 10..=40 were logged, the crash came before the checkpoint after step 30; the
        // resumed run logs step 40 again with another value.
        let log = vec![
            step(10, 4.0),
            step(20, 3.0),
            step(30, 2.0),
            step(40, 1.5),
            LogRecord::Resume {
                from: "ck".into(),
                epoch: 1,
                global_step: 30,
            },
            step(40, 1.7),
            step(50, f64::NAN),
        ];
        let s = series(&log, Metric::Loss);
        assert_eq!(s, vec![(10.0, 4.0), (20.0, 3.0), (30.0, 2.0), (40.0, 1.7)]);
        assert!(series(&log, Metric::Gap).is_empty());
    }

    #[test]
    fn legend_names_are_unique() {
        let runs = vec![
            PathBuf::from("a/run"),
            PathBuf::from("b/run"),
            PathBuf::from("c"),
        ];
        assert_eq!(labels(&runs), vec!["a/run", "b/run", "c"]);
    }
}
