//! `RUN_DIR/metrics.csv`: one row per logged step.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::TrainError;

pub const METRICS_FILE: &str = "metrics.csv";
pub const METRICS_HEADER: &str = "step,loss,elbo,recon_nll,kl,sparsity,lambda,c,lr,mean_gamma";

/// Batch means of one training step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepMetrics {
    pub step: u64,
    pub loss: f32,
    /// −(recon_nll + kl): the minibatch ELBO estimate (sparsity term excluded).
    pub elbo: f32,
    pub recon_nll: f32,
    pub kl: f32,
    pub sparsity: f32,
    pub lambda: f32,
    pub c: f32,
    pub lr: f64,
    pub mean_gamma: f32,
}

impl StepMetrics {
    pub fn csv_row(&self) -> String {
        format!(
            "{},{},{},{},{},{},{},{},{},{}",
            self.step,
            self.loss,
            self.elbo,
            self.recon_nll,
            self.kl,
            self.sparsity,
            self.lambda,
            self.c,
            self.lr,
            self.mean_gamma
        )
    }
}

/// Appends rows to metrics.csv; on resume drops rows past the checkpoint so a resumed run's
/// file matches an uninterrupted run's.
pub struct MetricsWriter {
    path: PathBuf,
}

impl MetricsWriter {
    pub fn open(run_dir: &Path, keep_up_to_step: Option<u64>) -> Result<Self, TrainError> {
        let path = run_dir.join(METRICS_FILE);
        let mut body = String::from(METRICS_HEADER);
        body.push('\n');
        if let (Some(limit), Ok(old)) = (keep_up_to_step, fs::read_to_string(&path)) {
            for line in old.lines().skip(1) {
                let step: Option<u64> = line.split(',').next().and_then(|s| s.parse().ok());
                if step.is_some_and(|s| s <= limit) {
                    body.push_str(line);
                    body.push('\n');
                }
            }
        }
        super::checkpoint::write_atomic(&path, body.as_bytes())?;
        Ok(MetricsWriter { path })
    }

    pub fn append(&mut self, m: &StepMetrics) -> Result<(), TrainError> {
        let mut f = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(|source| TrainError::Io {
                path: self.path.clone(),
                source,
            })?;
        writeln!(f, "{}", m.csv_row()).map_err(|source| TrainError::Io {
            path: self.path.clone(),
            source,
        })
    }
}
