//! The activity head on the device: the linear probe fitted on the int8 encoder's sparse
//! codes of the training split, quantised into the blob (format 4 and later) so that firmware, web
//! app, C ABI and host all emit the predicted activity with each frame.
//!
//! `cargo xtask quantise` adds it to every blob it writes; `cargo xtask activity-head
//! BLOB` adds (or refits) it on an existing blob without the training run, since it only
//! needs the blob's own codes.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use edge_runtime::blob::{ModelBlob, SCORE_SCALE};
use edge_runtime::encoder::{Encoder, SparseCode};
use edge_runtime::quant::QuantParams;
use host_trainer::data::{HarWindows, WindowConfig, load_har_windows, resolve_data_dir};
use host_trainer::eval::probe::{LinearProbe, ProbeConfig};
use sha2::{Digest, Sha256};

use xtask::write_atomic;

/// Options of `cargo xtask activity-head`.
#[derive(Debug, Args)]
pub struct ActivityHeadArgs {
    /// The blob to give an activity head (`models/NAME.vscq`); its model card `NAME.md`
    /// gets an "Activity head" section.
    pub blob: PathBuf,
    /// Where to write the new blob (default: replace `BLOB`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Data directory or zip (default: $VSC_DATA_DIR).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Classify postural transitions too (labels 7..=12).
    #[arg(long)]
    pub transitions: bool,
}

/// What fitting the head measured.
#[derive(Debug, Clone)]
pub struct HeadReport {
    pub classes: usize,
    pub train_windows: usize,
    pub test_windows: usize,
    /// The f64 probe on the int8 encoder's sparse codes, test subjects.
    pub probe_accuracy: f64,
    /// The quantised head as the device runs it, test subjects.
    pub head_accuracy: f64,
    /// Test windows where head and probe predict the same class.
    pub agreement: f64,
    /// Mean int8 score (margin, units of `SCORE_SCALE` nats) on the test windows.
    pub mean_score: f64,
}

/// Sparse codes μ ⊙ 1[γ > ½] of every window by the int8 encoder (rows × J), row-major.
fn int8_codes(encoder: &Encoder<'_>, w: &HarWindows) -> Vec<f32> {
    let j = encoder.blob().latent_dim();
    let mut out = Vec::with_capacity(w.len() * j);
    let mut code = SparseCode::default();
    for i in 0..w.len() {
        if encoder.encode(w.window(i), &mut code).is_err() {
            code = SparseCode::EMPTY;
        }
        out.extend((0..j).map(|k| code.mu(k)));
    }
    out
}

fn zero_based(labels: &[u8]) -> Vec<usize> {
    labels
        .iter()
        .map(|&l| usize::from(l.saturating_sub(1)))
        .collect()
}

/// Fits the probe on the training windows' int8 sparse codes, folds its standardisation
/// into real weights on μ, quantises it into the blob and measures the head on the test
/// windows. Returns the new blob bytes. Classes are the labels 1..=`n_classes`.
pub fn fit_head(
    blob_bytes: &[u8],
    train: &HarWindows,
    test: &HarWindows,
    n_classes: usize,
) -> Result<(Vec<u8>, HeadReport)> {
    let blob = ModelBlob::parse(blob_bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
    if train.dim != blob.window_dim() || test.dim != blob.window_dim() {
        bail!(
            "windows have {} values, the blob expects {}",
            train.dim,
            blob.window_dim()
        );
    }
    let encoder = Encoder::new(blob);
    let j = blob.latent_dim();
    let (x_train, x_test) = (int8_codes(&encoder, train), int8_codes(&encoder, test));
    let (y_train, y_test) = (zero_based(&train.labels), zero_based(&test.labels));
    let probe = LinearProbe::fit(&x_train, j, &y_train, n_classes, &ProbeConfig::default())?;
    // logit_c = Σ_j w_cj (μ_j − mean_j) / std_j + b_c  =  Σ_j (w_cj / std_j) μ_j + b'_c.
    let mut weights = Vec::with_capacity(n_classes * j);
    let mut bias = Vec::with_capacity(n_classes);
    for row in probe.weights.chunks_exact(j + 1) {
        let mut b = row[j];
        for (d, &w) in row[..j].iter().enumerate() {
            let w_real = w / probe.feature_std[d];
            weights.push(w_real as f32);
            b -= w_real * probe.feature_mean[d];
        }
        bias.push(b as f32);
    }
    let class_ids: Vec<u8> = (1..=n_classes)
        .map(|c| u8::try_from(c).context("too many classes"))
        .collect::<Result<_>>()?;
    let mut params = QuantParams::from_blob(&blob);
    params
        .set_activity_head(&class_ids, &weights, &bias)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let new_bytes = params.to_blob().map_err(|e| anyhow::anyhow!("{e}"))?;

    let new_blob = ModelBlob::parse(&new_bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
    let head_encoder = Encoder::new(new_blob);
    let probe_pred = probe.predict(&x_test);
    let (mut correct, mut probe_correct, mut agree, mut score_sum) = (0usize, 0, 0, 0f64);
    let mut code = SparseCode::default();
    for (i, (&y, &p)) in y_test.iter().zip(&probe_pred).enumerate() {
        if head_encoder.encode(test.window(i), &mut code).is_err() {
            continue;
        }
        let predicted = usize::from(code.activity).wrapping_sub(1);
        correct += usize::from(predicted == y);
        probe_correct += usize::from(p == y);
        agree += usize::from(predicted == p);
        score_sum += f64::from(code.activity_score);
    }
    let n = test.len().max(1) as f64;
    let report = HeadReport {
        classes: n_classes,
        train_windows: train.len(),
        test_windows: test.len(),
        probe_accuracy: probe_correct as f64 / n,
        head_accuracy: correct as f64 / n,
        agreement: agree as f64 / n,
        mean_score: score_sum / n,
    };
    Ok((new_bytes, report))
}

impl HeadReport {
    /// One line for logs and summaries.
    pub fn summary(&self) -> String {
        format!(
            "activity head ({} classes): int8 head {:.2} % vs f64 probe {:.2} % on the same int8 codes ({} test windows; same class {:.2} %)",
            self.classes,
            100.0 * self.head_accuracy,
            100.0 * self.probe_accuracy,
            self.test_windows,
            100.0 * self.agreement
        )
    }

    /// The model card's "Activity head" section.
    pub fn card_section(&self, command: &str) -> String {
        let mut s = String::from("## Activity head\n\n");
        let _ = writeln!(
            s,
            "A linear classifier on the sparse code, stored in the blob (format 4 and later) and run by \
             the device after every encode: multinomial logistic regression (L2 1e-4, \
             standardised features folded into the weights) fitted on the int8 encoder's \
             sparse codes μ ⊙ 1[γ > ½] of the {} training windows, quantised to int8 \
             weights per class. Each frame carries the predicted activity (1..={}) and its \
             int8 score: the margin of the winning logit over the runner-up in units of \
             {} nats (127 = saturated).\n",
            self.train_windows, self.classes, SCORE_SCALE
        );
        let _ = writeln!(
            s,
            "| on the {} test windows | accuracy |",
            self.test_windows
        );
        let _ = writeln!(s, "|---|---|");
        let _ = writeln!(
            s,
            "| f64 probe on the int8 codes | {:.2} % |",
            100.0 * self.probe_accuracy
        );
        let _ = writeln!(
            s,
            "| int8 head (the device) | {:.2} % |",
            100.0 * self.head_accuracy
        );
        let _ = writeln!(
            s,
            "| windows where both predict the same class | {:.2} % |",
            100.0 * self.agreement
        );
        let _ = writeln!(
            s,
            "\nMean score on the test windows: {:.1} ({:.2} nats).\n\n```sh\n{command}\n```",
            self.mean_score,
            self.mean_score * f64::from(SCORE_SCALE)
        );
        s
    }
}

/// The card's blob table rows that describe the bytes (size, sha256, format version),
/// rewritten for `bytes`; other lines are kept.
fn with_blob_facts(card: &str, bytes: &[u8]) -> String {
    let sha = Sha256::digest(bytes)
        .iter()
        .fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        });
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    let mut out = String::with_capacity(card.len());
    for line in card.lines() {
        let fact = if line.starts_with("| size | ") {
            format!("| size | {} bytes |", bytes.len())
        } else if line.starts_with("| sha256 | ") {
            format!("| sha256 | `{sha}` |")
        } else if line.starts_with("| format version | ") {
            format!("| format version | {version} |")
        } else {
            line.to_string()
        };
        out.push_str(&fact);
        out.push('\n');
    }
    out
}

/// `cargo xtask activity-head BLOB`.
pub fn run(args: &ActivityHeadArgs) -> Result<()> {
    let bytes =
        std::fs::read(&args.blob).with_context(|| format!("reading {}", args.blob.display()))?;
    let blob =
        ModelBlob::parse(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", args.blob.display()))?;
    let config = WindowConfig {
        channels: blob.channels(),
        include_transitions: args.transitions,
    };
    let data = resolve_data_dir(args.data.as_deref())?;
    eprintln!("loading HAR windows from {}", data.display());
    let (train, test) = load_har_windows(&data, &config)?;
    let (new_bytes, report) = fit_head(&bytes, &train, &test, usize::from(config.max_label()))?;
    let out = args.out.as_deref().unwrap_or(&args.blob);
    write_atomic(out, &new_bytes)?;
    println!(
        "wrote {} ({} bytes, format {})\n{}",
        out.display(),
        new_bytes.len(),
        edge_runtime::blob::FORMAT_VERSION,
        report.summary()
    );
    let card = out.with_extension("md");
    if card.exists() {
        let text = std::fs::read_to_string(&card)
            .with_context(|| format!("reading {}", card.display()))?;
        let mut command = format!("cargo xtask activity-head {}", args.blob.display());
        if let Some(o) = &args.out {
            let _ = write!(command, " --out {}", o.display());
        }
        if args.transitions {
            command.push_str(" --transitions");
        }
        let text = with_blob_facts(&text, &new_bytes);
        let text =
            xtask::card::with_section(&text, "## Activity head", &report.card_section(&command));
        write_atomic(&card, text.as_bytes())?;
        println!("updated the activity-head section of {}", card.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_facts_follow_the_new_bytes() {
        let card = "| | |\n|---|---|\n| size | 3 bytes |\n| sha256 | `00` |\n| format version | 3 |\n| other | x |\n";
        let mut bytes = b"VSCQ".to_vec();
        bytes.extend_from_slice(&4u16.to_le_bytes());
        let out = with_blob_facts(card, &bytes);
        assert!(out.contains("| size | 6 bytes |"));
        assert!(out.contains("| format version | 4 |"));
        assert!(out.contains("| other | x |"));
        let sha = Sha256::digest(&bytes);
        assert!(out.contains(&format!("`{:02x}{:02x}", sha[0], sha[1])));
    }
}
