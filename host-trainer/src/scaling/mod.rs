//! How raw model inputs are mapped into [0, 1] (the VSC decoder's mean is a sigmoid) and
//! back, fitted on the training rows only and stored with every model.
//!
//! - [`InputScaling`]: the form carried in `RUN_DIR/config.toml`.
//! - [`MinMaxScaling`], [`MinMaxFitter`]: per-column min/max of arbitrary matrices; the
//!   min/max fit and the `x = lo + x01 · range` inverse of every form.
//! - [`fit_input_scaling`]: HAR model inputs, one device [`ChannelScaling`] per channel of
//!   a waveform or per value of a spectrum.
//!
//! Turning HAR windows into model inputs is data loading: see `crate::data::inputs`.

mod har;
mod minmax;

pub use edge_runtime::preprocess::ChannelScaling;
use edge_runtime::preprocess::InputFeatures;
pub use har::fit_input_scaling;
pub use minmax::{MinMaxFitter, MinMaxScaling, unscale_row, unscale_std_row};
use serde::{Deserialize, Serialize};

/// The input scaling carried in `RUN_DIR/config.toml`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InputScaling {
    /// HAR windows of `window_len` samples per channel, channel-major, turned into model
    /// inputs by `features` (absent in runs made before spectra existed: waveform).
    /// `channel_bits` is `edge_runtime::preprocess::ChannelSet::bits()`; `scaling` has one
    /// entry per `features.scaling_block_len(window_len)` consecutive model-input values.
    HarChannels {
        channel_bits: u16,
        window_len: usize,
        scaling: Vec<ChannelScaling>,
        #[serde(default)]
        features: InputFeatures,
    },
    /// Arbitrary matrices: per-column min/max fitted on the training rows. Stored inline
    /// (`type = "min_max"` beside `min` and `max`), as serde writes a tagged newtype
    /// variant that holds a struct.
    MinMax(MinMaxScaling),
    /// Data already in [0, 1].
    Identity,
}

impl InputScaling {
    /// The HAR model-input representation, `None` for matrix models.
    pub fn har_features(&self) -> Option<InputFeatures> {
        match self {
            InputScaling::HarChannels { features, .. } => Some(*features),
            _ => None,
        }
    }

    /// The HAR models' device scaling (one per channel, or per value of a spectrum),
    /// `None` for matrix models.
    pub fn har_channels(&self) -> Option<&[ChannelScaling]> {
        match self {
            InputScaling::HarChannels { scaling, .. } => Some(scaling),
            _ => None,
        }
    }

    /// Maps one raw model-input row (length `dim`; for HAR models the features of a
    /// window, see `crate::data::model_inputs`) into [0, 1] in place.
    pub fn apply_row(&self, row: &mut [f32]) {
        match self {
            InputScaling::Identity => {
                for v in row.iter_mut() {
                    *v = v.clamp(0.0, 1.0);
                }
            }
            InputScaling::MinMax(s) => s.transform_row(row),
            InputScaling::HarChannels {
                scaling,
                features,
                window_len,
                ..
            } => har::apply_row(scaling, features.scaling_block_len(*window_len), row),
        }
    }

    /// Per model-input column of `cols`, `(lo, range)` with `x = lo + x01 · range`: the
    /// inverse of the scaling (a column that was constant in training gets range 0 and
    /// comes back as that constant).
    pub fn column_ranges(&self, cols: usize) -> Vec<(f32, f32)> {
        match self {
            InputScaling::MinMax(s) => s.column_ranges(),
            InputScaling::HarChannels {
                scaling,
                features,
                window_len,
                ..
            } => har::column_ranges(scaling, features.scaling_block_len(*window_len), cols),
            InputScaling::Identity => vec![(0.0, 1.0); cols],
        }
    }

    /// Maps `rows × dim` values in [0, 1] back to raw units (see
    /// [`InputScaling::column_ranges`]).
    pub fn invert(&self, x01: &[f32], dim: usize) -> Vec<f32> {
        let ranges = self.column_ranges(dim);
        let mut out = x01.to_vec();
        for row in out.chunks_mut(dim.max(1)) {
            unscale_row(row, &ranges);
        }
        out
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
        let s = InputScaling::MinMax(MinMaxScaling {
            min: vec![0.0, -2.0],
            max: vec![2.0, 2.0],
        });
        assert_eq!(s.apply(&[1.0, 0.0, 5.0, -9.0], 2), vec![0.5, 0.5, 1.0, 0.0]);
        let s = InputScaling::HarChannels {
            channel_bits: 3,
            window_len: 128,
            features: InputFeatures::BandSpectrum,
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
        // Spectrum inputs: one scaling entry per value.
        assert_eq!(s.apply(&[0.0, 1.0, 3.0, -1.0], 2), vec![0.5, 1.0, 1.0, 0.0]);
        // Back through 1 / scale: clamped values return as the ends of the fitted range.
        assert_eq!(s.invert(&[0.5, 1.0, 1.0, 0.0], 2), vec![0.0, 1.0, 1.0, 0.0]);
    }

    /// `RUN_DIR/config.toml` holds the scaling as its `[scaling]` table.
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct ConfigDoc {
        scaling: InputScaling,
    }

    /// `[scaling]` tables as `toml::to_string` writes them (the layout of the stored runs'
    /// config.toml): stored runs must keep loading, and new runs must be written the same way.
    const STORED_CONFIGS: [&str; 3] = [
        "[scaling]\ntype = \"min_max\"\nmin = [0.0, -2.0, 0.5]\nmax = [2.0, 2.0, 0.5]\n",
        "[scaling]\ntype = \"har_channels\"\nchannel_bits = 3\nwindow_len = 128\n\
         features = \"band_spectrum\"\n\n[[scaling.scaling]]\noffset = -0.36411774158477783\n\
         scale = 0.700705885887146\n\n[[scaling.scaling]]\noffset = 0.0\nscale = 0.0\n",
        "[scaling]\ntype = \"identity\"\n",
    ];

    #[test]
    fn stored_config_forms_parse_and_round_trip_unchanged() {
        for text in STORED_CONFIGS {
            let doc: ConfigDoc = toml::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(toml::to_string(&doc).unwrap(), text);
        }
        let min_max: ConfigDoc = toml::from_str(STORED_CONFIGS[0]).unwrap();
        assert_eq!(
            min_max.scaling,
            InputScaling::MinMax(MinMaxScaling {
                min: vec![0.0, -2.0, 0.5],
                max: vec![2.0, 2.0, 0.5],
            })
        );
        assert_eq!(
            min_max.scaling.apply(&[1.0, 0.0, 7.0], 3),
            vec![0.5, 0.5, 0.0],
            "a constant column maps to 0"
        );
        let har: ConfigDoc = toml::from_str(STORED_CONFIGS[1]).unwrap();
        let scaling = har.scaling.har_channels().expect("HAR scaling");
        assert_eq!(scaling[1], ChannelScaling::from_min_max(0.0, 0.0));
        assert_eq!(
            har.scaling.har_features(),
            Some(InputFeatures::BandSpectrum)
        );
        let json = serde_json::to_string(&min_max.scaling).unwrap();
        assert_eq!(
            json,
            r#"{"type":"min_max","min":[0.0,-2.0,0.5],"max":[2.0,2.0,0.5]}"#
        );
        assert_eq!(
            serde_json::from_str::<InputScaling>(&json).unwrap(),
            min_max.scaling
        );
    }
}
