//! How raw inputs were mapped into [0, 1] before training; stored with every model.

pub use edge_runtime::preprocess::ChannelScaling;
use serde::{Deserialize, Serialize};

/// The input scaling carried in `RUN_DIR/config.toml`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InputScaling {
    /// HAR windows, channel-major (`channels.len()` blocks of `window_len` samples).
    /// `channel_bits` is `edge_runtime::preprocess::ChannelSet::bits()`.
    HarChannels {
        channel_bits: u16,
        window_len: usize,
        scaling: Vec<ChannelScaling>,
    },
    /// Arbitrary matrices: per-column min/max fitted on the training rows.
    MinMax { min: Vec<f32>, max: Vec<f32> },
    /// Data already in [0, 1].
    Identity,
}

impl InputScaling {
    /// Maps one raw row (length `dim`) into [0, 1] in place.
    pub fn apply_row(&self, row: &mut [f32]) {
        match self {
            InputScaling::Identity => {
                for v in row.iter_mut() {
                    *v = v.clamp(0.0, 1.0);
                }
            }
            InputScaling::MinMax { min, max } => {
                for ((v, lo), hi) in row.iter_mut().zip(min).zip(max) {
                    let span = hi - lo;
                    let s = if span > 0.0 { 1.0 / span } else { 0.0 };
                    *v = ((*v - lo) * s).clamp(0.0, 1.0);
                }
            }
            InputScaling::HarChannels {
                window_len,
                scaling,
                ..
            } => {
                for (block, ch) in row.chunks_mut(*window_len).zip(scaling) {
                    for v in block {
                        *v = ch.apply(*v);
                    }
                }
            }
        }
    }

    /// Maps a row-major `rows × dim` matrix into [0, 1].
    pub fn apply(&self, raw: &[f32], dim: usize) -> Vec<f32> {
        let mut out = raw.to_vec();
        if dim > 0 {
            for row in out.chunks_mut(dim) {
                self.apply_row(row);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minmax_and_channels_map_into_unit_interval() {
        let s = InputScaling::MinMax {
            min: vec![0.0, -2.0],
            max: vec![2.0, 2.0],
        };
        assert_eq!(s.apply(&[1.0, 0.0, 5.0, -9.0], 2), vec![0.5, 0.5, 1.0, 0.0]);
        let s = InputScaling::HarChannels {
            channel_bits: 3,
            window_len: 2,
            scaling: vec![
                ChannelScaling {
                    offset: -1.0,
                    scale: 0.5,
                },
                ChannelScaling {
                    offset: 0.0,
                    scale: 1.0,
                },
            ],
        };
        assert_eq!(
            s.apply(&[0.0, 1.0, 0.25, 2.0], 4),
            vec![0.5, 1.0, 0.25, 1.0]
        );
    }
}
