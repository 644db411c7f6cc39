//! Two small PNG figures for `tandem inspect`, drawn pixel by pixel (no font
//! or system dependency): the expert-allocation heatmap and the task weights
//! over epochs. Text uses a built-in 3×5 pixel font (digits, letters, `._-:=`).

use crate::{Error, Result};
use std::path::Path;

/// An RGB image in memory.
pub struct Canvas {
    pub width: usize,
    pub height: usize,
    /// Row-major RGB bytes.
    pub rgb: Vec<u8>,
}

/// 3×5 glyphs, rows top to bottom, '1' = ink.
const FONT: &[(char, &str)] = &[
    ('0', "111101101101111"),
    ('1', "010110010010111"),
    ('2', "111001111100111"),
    ('3', "111001111001111"),
    ('4', "101101111001001"),
    ('5', "111100111001111"),
    ('6', "111100111101111"),
    ('7', "111001001001001"),
    ('8', "111101111101111"),
    ('9', "111101111001111"),
    ('a', "010101111101101"),
    ('b', "110101110101110"),
    ('c', "011100100100011"),
    ('d', "110101101101110"),
    ('e', "111100110100111"),
    ('f', "111100110100100"),
    ('g', "011100101101011"),
    ('h', "101101111101101"),
    ('i', "111010010010111"),
    ('j', "001001001101010"),
    ('k', "101101110101101"),
    ('l', "100100100100111"),
    ('m', "101111111101101"),
    ('n', "110101101101101"),
    ('o', "010101101101010"),
    ('p', "110101110100100"),
    ('q', "010101101110011"),
    ('r', "110101110101101"),
    ('s', "011100010001110"),
    ('t', "111010010010010"),
    ('u', "101101101101111"),
    ('v', "101101101101010"),
    ('w', "101101111111101"),
    ('x', "101101010101101"),
    ('y', "101101010010010"),
    ('z', "111001010100111"),
    ('.', "000000000000010"),
    ('-', "000000111000000"),
    ('_', "000000000000111"),
    (':', "000010000010000"),
    ('=', "000111000111000"),
    ('(', "010100100100010"),
    (')', "010001001001010"),
];

/// Ten distinguishable line colours (matplotlib's tab10).
pub const PALETTE: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

const WHITE: [u8; 3] = [255, 255, 255];
const BLACK: [u8; 3] = [0, 0, 0];
const GREY: [u8; 3] = [200, 200, 200];

impl Canvas {
    /// A white canvas.
    pub fn new(width: usize, height: usize) -> Canvas {
        Canvas {
            width,
            height,
            rgb: vec![255; width * height * 3],
        }
    }

    /// Sets one pixel (ignored outside the canvas).
    pub fn put(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            let at = (y as usize * self.width + x as usize) * 3;
            self.rgb[at..at + 3].copy_from_slice(&c);
        }
    }

    /// Fills the rectangle [x, x+w) × [y, y+h).
    pub fn rect(&mut self, x: i64, y: i64, w: i64, h: i64, c: [u8; 3]) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.put(xx, yy, c);
            }
        }
    }

    /// A line `thick` pixels wide from (x0, y0) to (x1, y1).
    pub fn line(&mut self, x0: f32, y0: f32, x1: f32, y1: f32, thick: i64, c: [u8; 3]) {
        let steps = (x1 - x0).abs().max((y1 - y0).abs()).ceil().max(1.0) as i64;
        for s in 0..=steps {
            let t = s as f32 / steps as f32;
            let (x, y) = (x0 + t * (x1 - x0), y0 + t * (y1 - y0));
            let r = thick / 2;
            self.rect(x.round() as i64 - r, y.round() as i64 - r, thick, thick, c);
        }
    }

    /// Text with its top-left corner at (x, y), each font pixel `scale` wide;
    /// unknown characters leave a gap.
    pub fn text(&mut self, x: i64, y: i64, scale: i64, s: &str, c: [u8; 3]) {
        let mut cx = x;
        for ch in s.chars() {
            let lower = ch.to_ascii_lowercase();
            if let Some((_, bits)) = FONT.iter().find(|(g, _)| *g == lower) {
                for (k, b) in bits.bytes().enumerate() {
                    if b == b'1' {
                        let (gx, gy) = ((k % 3) as i64, (k / 3) as i64);
                        self.rect(cx + gx * scale, y + gy * scale, scale, scale, c);
                    }
                }
            }
            cx += 4 * scale;
        }
    }

    /// Width in pixels of `s` drawn by [`Canvas::text`].
    pub fn text_width(s: &str, scale: i64) -> i64 {
        (s.chars().count() as i64 * 4 - 1).max(0) * scale
    }

    /// The canvas as an 8-bit RGB PNG file's bytes.
    pub fn png(&self) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        let mut enc = png::Encoder::new(&mut bytes, self.width as u32, self.height as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let fail = |e: png::EncodingError| Error::Invalid(format!("encoding a PNG: {e}"));
        let mut w = enc.write_header().map_err(fail)?;
        w.write_image_data(&self.rgb).map_err(fail)?;
        w.finish().map_err(fail)?;
        Ok(bytes)
    }

    /// Writes the canvas as a PNG through a hidden, uniquely named temporary
    /// file beside `path`, renamed over it once complete: a failed write
    /// leaves an existing file as it was and removes the temporary file.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = self.png()?;
        crate::files::write_atomically(path, &bytes)
    }
}

/// White (0) to dark blue (1).
fn shade(v: f32) -> [u8; 3] {
    let v = v.clamp(0.0, 1.0);
    let lerp = |a: f32, b: f32| (a + (b - a) * v).round() as u8;
    [lerp(247.0, 8.0), lerp(251.0, 48.0), lerp(255.0, 107.0)]
}

/// Heatmap of `values[task][expert]` (mean gate weights in [0, 1]), one row
/// per task and one column per expert (headed by `columns`), each cell
/// labelled with its value; written to `path` as a PNG.
pub fn allocation_heatmap(
    path: &Path,
    title: &str,
    tasks: &[String],
    columns: &[String],
    values: &[Vec<f32>],
) -> Result<()> {
    allocation_canvas(title, tasks, columns, values).save(path)
}

/// The figure [`allocation_heatmap`] writes.
pub fn allocation_canvas(
    title: &str,
    tasks: &[String],
    columns: &[String],
    values: &[Vec<f32>],
) -> Canvas {
    let experts = values.first().map_or(0, |v| v.len());
    let scale = 2;
    // Cells wide enough for every column's name (members are named).
    let cell = columns
        .iter()
        .map(|s| Canvas::text_width(s, scale) + 8)
        .max()
        .unwrap_or(0)
        .max(56);
    let label_w = tasks
        .iter()
        .map(|t| Canvas::text_width(t, scale))
        .max()
        .unwrap_or(0)
        + 16;
    let top = 56i64;
    let (w, h) = (
        (label_w + cell * experts as i64 + 16).max(Canvas::text_width(title, scale) + 16),
        top + cell * tasks.len() as i64 + 16,
    );
    let mut c = Canvas::new(w as usize, h as usize);
    c.text(8, 8, scale, title, BLACK);
    for e in 0..experts {
        let s = columns.get(e).cloned().unwrap_or_else(|| format!("e{e}"));
        let x = label_w + e as i64 * cell + (cell - Canvas::text_width(&s, scale)) / 2;
        c.text(x, top - 16, scale, &s, BLACK);
    }
    for (j, name) in tasks.iter().enumerate() {
        let y = top + j as i64 * cell;
        c.text(8, y + cell / 2 - 5, scale, name, BLACK);
        let row = values.get(j).map_or(&[][..], |r| &r[..]);
        for (e, &v) in row.iter().enumerate() {
            let x = label_w + e as i64 * cell;
            c.rect(x, y, cell, cell, shade(v));
            let s = format!("{v:.2}");
            let ink = if v > 0.5 { WHITE } else { BLACK };
            c.text(
                x + (cell - Canvas::text_width(&s, scale)) / 2,
                y + cell / 2 - 5,
                scale,
                &s,
                ink,
            );
        }
    }
    // Grid lines between cells.
    for e in 0..=experts as i64 {
        c.rect(label_w + e * cell, top, 1, cell * tasks.len() as i64, GREY);
    }
    for j in 0..=tasks.len() as i64 {
        c.rect(label_w, top + j * cell, cell * experts as i64, 1, GREY);
    }
    c
}

/// Line plot of `history[epoch][task]` (the task weights λ_j after each
/// epoch), written to `path` as a PNG.
pub fn weights_plot(path: &Path, tasks: &[String], history: &[Vec<f32>]) -> Result<()> {
    weights_canvas(tasks, history).save(path)
}

/// The figure [`weights_plot`] writes.
pub fn weights_canvas(tasks: &[String], history: &[Vec<f32>]) -> Canvas {
    let (w, h) = (720i64, 400i64);
    let (left, right, top, bottom) = (70i64, 170i64, 40i64, 50i64);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let mut c = Canvas::new(w as usize, h as usize);
    c.text(left, 12, 2, "task weights by epoch", BLACK);
    let all = history.iter().flatten().copied().filter(|v| v.is_finite());
    let (mut lo, mut hi) = all.fold((f32::MAX, f32::MIN), |(a, b), v| (a.min(v), b.max(v)));
    if lo > hi {
        (lo, hi) = (0.0, 1.0);
    }
    lo = lo.min(0.0);
    if hi - lo < 1e-6 {
        hi = lo + 1.0;
    }
    hi += 0.05 * (hi - lo);
    let epochs = history.len().max(1);
    let px = |e: usize| left as f32 + pw as f32 * (e as f32 + 0.5) / epochs as f32;
    let py = |v: f32| (top + ph) as f32 - ph as f32 * (v - lo) / (hi - lo);
    // Axes, five horizontal grid lines with their values.
    for k in 0..=4 {
        let v = lo + (hi - lo) * k as f32 / 4.0;
        let y = py(v).round() as i64;
        c.rect(left, y, pw, 1, GREY);
        let s = format!("{v:.2}");
        c.text(left - 8 - Canvas::text_width(&s, 2), y - 5, 2, &s, BLACK);
    }
    c.rect(left, top, 2, ph + 1, BLACK);
    c.rect(left, top + ph, pw, 2, BLACK);
    let tick_every = epochs.div_ceil(10).max(1);
    for e in (0..epochs).step_by(tick_every) {
        let x = px(e).round() as i64;
        c.rect(x, top + ph, 1, 6, BLACK);
        let s = format!("{}", e + 1);
        c.text(
            x - Canvas::text_width(&s, 2) / 2,
            top + ph + 10,
            2,
            &s,
            BLACK,
        );
    }
    c.text(left + pw / 2 - 20, h - 18, 2, "epoch", BLACK);
    for (j, name) in tasks.iter().enumerate() {
        let col = PALETTE[j % PALETTE.len()];
        let pts: Vec<(f32, f32)> = history
            .iter()
            .enumerate()
            .filter_map(|(e, l)| l.get(j).map(|&v| (px(e), py(v))))
            .collect();
        for p in pts.windows(2) {
            c.line(p[0].0, p[0].1, p[1].0, p[1].1, 3, col);
        }
        for &(x, y) in &pts {
            c.rect(x.round() as i64 - 3, y.round() as i64 - 3, 7, 7, col);
        }
        let ly = top + 10 + 22 * j as i64;
        c.rect(w - right + 16, ly, 20, 4, col);
        c.text(w - right + 42, ly - 3, 2, name, BLACK);
    }
    c
}
