//! Per-column min/max scaling into [0, 1], fitted on the training rows.
//!
//! `x01 = clamp((x − min) / (max − min), 0, 1)` and back `x = min + x01 · (max − min)`.
//! Values outside the training range (in test data) are clamped rather than rejected: the
//! model cannot represent them anyway. A constant column (max = min) maps to 0 and back to
//! its constant. This is the only place of the crate that does this arithmetic, so every
//! user of a stored run (training, `vsc` matrix commands, evaluation, the API) scales the
//! same way, bit for bit.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::matrix::{AtomicFile, Matrix, MatrixError};

/// Per-column minimum and maximum of the training matrix (the `min_max` form of a run's
/// `config.toml`, and the JSON that [`MinMaxScaling::save_json`] writes).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct MinMaxScaling {
    pub min: Vec<f32>,
    pub max: Vec<f32>,
}

/// Accumulates minima and maxima over row batches, per column or per block of
/// consecutive columns (one HAR channel of a waveform shares one scaling).
#[derive(Clone, Debug)]
pub struct MinMaxFitter {
    row_len: usize,
    block_len: usize,
    /// One entry per block.
    min: Vec<f32>,
    max: Vec<f32>,
    rows: usize,
}

impl MinMaxFitter {
    /// One minimum and maximum per column of `cols`-wide rows.
    pub fn new(cols: usize) -> MinMaxFitter {
        MinMaxFitter::per_block(cols, 1)
    }

    /// One minimum and maximum per block of `block_len` consecutive values of
    /// `row_len`-wide rows (the last block may be shorter).
    pub fn per_block(row_len: usize, block_len: usize) -> MinMaxFitter {
        let block_len = block_len.max(1);
        let blocks = row_len.div_ceil(block_len);
        MinMaxFitter {
            row_len,
            block_len,
            min: vec![f32::INFINITY; blocks],
            max: vec![f32::NEG_INFINITY; blocks],
            rows: 0,
        }
    }

    /// Adds whole rows (row-major; a trailing partial row is ignored).
    pub fn update(&mut self, data: &[f32]) {
        if self.row_len == 0 {
            return;
        }
        for row in data.chunks_exact(self.row_len) {
            let blocks = self.min.iter_mut().zip(&mut self.max);
            for ((lo, hi), values) in blocks.zip(row.chunks(self.block_len)) {
                for &x in values {
                    *lo = lo.min(x);
                    *hi = hi.max(x);
                }
            }
            self.rows += 1;
        }
    }

    /// Per block `(min, max)`; `(∞, −∞)` where no row was added.
    pub fn bounds(&self) -> impl Iterator<Item = (f32, f32)> + '_ {
        self.min.iter().copied().zip(self.max.iter().copied())
    }

    /// The scaling, or None if no row was added.
    pub fn finish(self) -> Option<MinMaxScaling> {
        (self.rows > 0).then_some(MinMaxScaling {
            min: self.min,
            max: self.max,
        })
    }
}

impl MinMaxScaling {
    /// Fits on a whole matrix.
    pub fn fit(m: &Matrix) -> MinMaxScaling {
        let mut f = MinMaxFitter::new(m.cols);
        f.update(&m.data);
        // A Matrix always has at least one row; an empty one gets the identity-like
        // scaling [0, 1] per column.
        f.finish().unwrap_or_else(|| MinMaxScaling {
            min: vec![0.0; m.cols],
            max: vec![1.0; m.cols],
        })
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.min.len()
    }

    /// Scales one row (the first [`Self::cols`] values of it) into [0, 1] in place.
    pub fn transform_row(&self, row: &mut [f32]) {
        for ((v, lo), hi) in row.iter_mut().zip(&self.min).zip(&self.max) {
            let span = hi - lo;
            let s = if span > 0.0 { 1.0 / span } else { 0.0 };
            *v = ((*v - lo) * s).clamp(0.0, 1.0);
        }
    }

    /// Scales row-major `data` (whole rows of [`Self::cols`] values) into [0, 1] in place.
    ///
    /// # Panics
    /// If `data.len()` is not a multiple of the width (a caller bug: widths are checked
    /// against the file with [`crate::matrix::check_width`] before any data is scaled).
    pub fn transform_in_place(&self, data: &mut [f32]) {
        for row in self.whole_rows(data) {
            self.transform_row(row);
        }
    }

    /// Per column `(lo, range)` with `x = lo + x01 · range`.
    pub fn column_ranges(&self) -> Vec<(f32, f32)> {
        self.min
            .iter()
            .zip(&self.max)
            .map(|(lo, hi)| (*lo, hi - lo))
            .collect()
    }

    /// Maps model-space means (in [0, 1]) back to original units in place.
    ///
    /// # Panics
    /// As [`Self::transform_in_place`].
    pub fn inverse_mean_in_place(&self, data: &mut [f32]) {
        let ranges = self.column_ranges();
        for row in self.whole_rows(data) {
            unscale_row(row, &ranges);
        }
    }

    /// Maps model-space standard deviations back to original units in place (a scale,
    /// so only the range matters).
    ///
    /// # Panics
    /// As [`Self::transform_in_place`].
    pub fn inverse_std_in_place(&self, data: &mut [f32]) {
        let ranges = self.column_ranges();
        for row in self.whole_rows(data) {
            unscale_std_row(row, &ranges);
        }
    }

    fn whole_rows<'a>(&self, data: &'a mut [f32]) -> std::slice::ChunksExactMut<'a, f32> {
        let cols = self.cols();
        assert!(
            cols > 0 && data.len().is_multiple_of(cols),
            "row width mismatch"
        );
        data.chunks_exact_mut(cols)
    }

    /// Writes the scaling as JSON (atomically).
    pub fn save_json(&self, path: &Path) -> Result<(), MatrixError> {
        let text = serde_json::to_string_pretty(self).map_err(|e| MatrixError::Json {
            file: path.to_owned(),
            message: e.to_string(),
        })?;
        let mut f = AtomicFile::create(path)?;
        f.write_bytes(text.as_bytes())?;
        f.commit()
    }

    /// Reads a scaling written by [`Self::save_json`] and checks it is usable.
    pub fn load_json(path: &Path) -> Result<MinMaxScaling, MatrixError> {
        let text = std::fs::read_to_string(path).map_err(|e| MatrixError::io(path, e))?;
        let s: MinMaxScaling = serde_json::from_str(&text).map_err(|e| MatrixError::Json {
            file: path.to_owned(),
            message: format!("not a min/max scaling: {e}"),
        })?;
        let bad = s.min.len() != s.max.len()
            || s.min.is_empty()
            || s.min
                .iter()
                .zip(&s.max)
                .any(|(lo, hi)| !lo.is_finite() || !hi.is_finite() || lo > hi);
        if bad {
            return Err(MatrixError::Json {
                file: path.to_owned(),
                message: "min/max lists differ in length, are empty, or have min > max".into(),
            });
        }
        Ok(s)
    }
}

/// Maps one row of [0, 1] values back to raw units in place: `x = lo + x01 · range` per
/// column `(lo, range)`, the form every scaling's inverse is given in (see
/// `InputScaling::column_ranges`).
pub fn unscale_row(row: &mut [f32], ranges: &[(f32, f32)]) {
    for (v, &(lo, range)) in row.iter_mut().zip(ranges) {
        *v = lo + *v * range;
    }
}

/// Maps one row of model-space standard deviations back to raw units in place (a scale,
/// so only the range of each column `(lo, range)` matters).
pub fn unscale_std_row(row: &mut [f32], ranges: &[(f32, f32)]) {
    for (s, &(_, range)) in row.iter_mut().zip(ranges) {
        *s *= range;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_transform_and_inverse() {
        let m = Matrix::new(3, 3, vec![1.0, -2.0, 5.0, 3.0, 2.0, 5.0, 2.0, 0.0, 5.0]).unwrap();
        let s = MinMaxScaling::fit(&m);
        assert_eq!(s.min, vec![1.0, -2.0, 5.0]);
        assert_eq!(s.max, vec![3.0, 2.0, 5.0]);
        let mut x = m.data.clone();
        s.transform_in_place(&mut x);
        assert_eq!(x, vec![0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.5, 0.5, 0.0]);
        s.inverse_mean_in_place(&mut x);
        assert_eq!(x, m.data);
        // Out-of-range test values are clamped.
        let mut y = vec![0.0, 4.0, 7.0];
        s.transform_in_place(&mut y);
        assert_eq!(y, vec![0.0, 1.0, 0.0]);
        let mut sd = vec![0.5, 0.25, 0.1];
        s.inverse_std_in_place(&mut sd);
        assert_eq!(sd, vec![1.0, 1.0, 0.0]);
    }

    #[test]
    fn batched_fit_equals_whole_fit() {
        let data: Vec<f32> = (0..40).map(|i| ((i * 37) % 23) as f32 - 11.0).collect();
        let m = Matrix::new(10, 4, data.clone()).unwrap();
        let mut f = MinMaxFitter::new(4);
        for chunk in data.chunks(12) {
            f.update(chunk);
        }
        assert_eq!(f.finish().unwrap(), MinMaxScaling::fit(&m));
    }

    #[test]
    fn block_fit_shares_bounds_across_each_block() {
        // Rows of 5 in blocks of 2: columns {0, 1}, {2, 3}, {4}.
        let mut f = MinMaxFitter::per_block(5, 2);
        assert_eq!(f.bounds().count(), 3);
        assert!(
            f.bounds()
                .all(|(lo, hi)| lo == f32::INFINITY && hi == f32::NEG_INFINITY)
        );
        f.update(&[1.0, -3.0, 2.0, 2.0, 9.0, 0.0, 4.0, 7.0, 6.0, -1.0, 0.5]);
        assert_eq!(
            f.bounds().collect::<Vec<_>>(),
            vec![(-3.0, 4.0), (2.0, 7.0), (-1.0, 9.0)],
            "the trailing partial row is ignored"
        );
        assert_eq!(MinMaxFitter::per_block(0, 128).finish(), None);
    }
}
