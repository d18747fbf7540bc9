//! Per-column min/max scaling into [0, 1], fitted on the training matrix and stored with
//! the model (the VSC decoder's mean is a sigmoid, so inputs must lie in [0, 1]).
//!
//! `x01 = clamp((x − min) / (max − min), 0, 1)`. Values outside the training range (in
//! test data) are clamped rather than rejected: the model cannot represent them anyway.
//! A constant column (max = min) maps to 0 and back to its constant, exactly as
//! [`crate::train::InputScaling::MinMax`] (the form stored in a run's `config.toml`) does,
//! so that every user of a stored run scales the same way.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::MatrixError;
use super::{AtomicFile, Matrix};

/// Per-column minimum and maximum of the training matrix.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct MinMaxScaling {
    pub min: Vec<f32>,
    pub max: Vec<f32>,
}

/// Accumulates column minima and maxima over row batches.
#[derive(Clone, Debug)]
pub struct MinMaxFitter {
    min: Vec<f32>,
    max: Vec<f32>,
    rows: usize,
}

impl MinMaxFitter {
    pub fn new(cols: usize) -> MinMaxFitter {
        MinMaxFitter {
            min: vec![f32::INFINITY; cols],
            max: vec![f32::NEG_INFINITY; cols],
            rows: 0,
        }
    }

    /// Adds whole rows (row-major; a trailing partial row is ignored).
    pub fn update(&mut self, data: &[f32]) {
        let cols = self.min.len();
        if cols == 0 {
            return;
        }
        for row in data.chunks_exact(cols) {
            for ((lo, hi), &x) in self.min.iter_mut().zip(&mut self.max).zip(row) {
                *lo = lo.min(x);
                *hi = hi.max(x);
            }
            self.rows += 1;
        }
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
        // A Matrix from this module always has at least one row; an empty one gets the
        // identity-like scaling [0, 1] per column.
        f.finish().unwrap_or_else(|| MinMaxScaling {
            min: vec![0.0; m.cols],
            max: vec![1.0; m.cols],
        })
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.min.len()
    }

    fn range(&self, c: usize) -> f32 {
        self.max[c] - self.min[c]
    }

    /// Scales row-major `data` (whole rows of [`Self::cols`] values) into [0, 1] in place.
    ///
    /// # Panics
    /// If `data.len()` is not a multiple of the width (a caller bug: widths are checked
    /// against the file with [`super::check_width`] before any data is scaled).
    pub fn transform_in_place(&self, data: &mut [f32]) {
        let cols = self.cols();
        assert!(
            cols > 0 && data.len().is_multiple_of(cols),
            "row width mismatch"
        );
        for row in data.chunks_exact_mut(cols) {
            for (c, x) in row.iter_mut().enumerate() {
                let r = self.range(c);
                // Same arithmetic as InputScaling::apply_row, for bit-identical results.
                let inv = if r > 0.0 { 1.0 / r } else { 0.0 };
                *x = ((*x - self.min[c]) * inv).clamp(0.0, 1.0);
            }
        }
    }

    /// Maps model-space means (in [0, 1]) back to original units in place.
    ///
    /// # Panics
    /// As [`Self::transform_in_place`].
    pub fn inverse_mean_in_place(&self, data: &mut [f32]) {
        let cols = self.cols();
        assert!(
            cols > 0 && data.len().is_multiple_of(cols),
            "row width mismatch"
        );
        for row in data.chunks_exact_mut(cols) {
            for (c, x) in row.iter_mut().enumerate() {
                *x = self.min[c] + *x * self.range(c);
            }
        }
    }

    /// Maps model-space standard deviations back to original units in place (a scale,
    /// so only the range matters).
    ///
    /// # Panics
    /// As [`Self::transform_in_place`].
    pub fn inverse_std_in_place(&self, data: &mut [f32]) {
        let cols = self.cols();
        assert!(
            cols > 0 && data.len().is_multiple_of(cols),
            "row width mismatch"
        );
        for row in data.chunks_exact_mut(cols) {
            for (c, s) in row.iter_mut().enumerate() {
                *s *= self.range(c);
            }
        }
    }

    /// The form stored in a run's `config.toml`.
    pub fn to_input_scaling(&self) -> crate::train::InputScaling {
        crate::train::InputScaling::MinMax {
            min: self.min.clone(),
            max: self.max.clone(),
        }
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
}
