//! Model-input scaling into [0, 1], per channel, fitted on the training split only.
//!
//! The constants are data: they travel with every model (checkpoint config and blob),
//! and the device applies them with the same `ChannelScaling::apply` used here.

use edge_runtime::preprocess::{
    ChannelScaling, ChannelSet, InputFeatures, WINDOW_LEN, scale_window,
};

use super::DataError;
use super::windows::HarWindows;

/// Per selected channel (in `Channel` order), min/max over every sample of every
/// window in `train`, mapped onto [0, 1]. A constant channel gets `scale = 0` (maps to 0);
/// no windows at all gives `offset = 0, scale = 0` for every channel.
pub fn fit_scaling(train: &HarWindows) -> Vec<ChannelScaling> {
    fit_input_scaling(&train.x, train.dim, InputFeatures::Waveform)
}

/// The raw (unscaled) model inputs of every window: `windows.len() ×
/// features.input_dim(windows.channels)`, row-major, computed by the device's code.
pub fn model_inputs(windows: &HarWindows, features: InputFeatures) -> Result<Vec<f32>, DataError> {
    let dim = features.input_dim(windows.channels);
    let mut out = vec![0.0f32; windows.len() * dim];
    if dim == 0 {
        return Ok(out);
    }
    for (window, row) in windows
        .x
        .chunks_exact(windows.dim)
        .zip(out.chunks_exact_mut(dim))
    {
        features
            .compute(window, row)
            .map_err(|e| DataError::Shape { msg: e.to_string() })?;
    }
    Ok(out)
}

/// Min/max over the training rows of every block of `features.scaling_block_len(WINDOW_LEN)`
/// consecutive model-input values (a channel of a waveform, one value of a spectrum),
/// mapped onto [0, 1]. `raw` is `rows × dim` from [`model_inputs`].
pub fn fit_input_scaling(raw: &[f32], dim: usize, features: InputFeatures) -> Vec<ChannelScaling> {
    let block = features.scaling_block_len(WINDOW_LEN);
    let n_blocks = dim.div_ceil(block);
    let mut min = vec![f32::INFINITY; n_blocks];
    let mut max = vec![f32::NEG_INFINITY; n_blocks];
    if dim > 0 {
        for row in raw.chunks_exact(dim) {
            for (b, values) in row.chunks(block).enumerate() {
                for &x in values {
                    min[b] = min[b].min(x);
                    max[b] = max[b].max(x);
                }
            }
        }
    }
    min.iter()
        .zip(&max)
        .map(|(&lo, &hi)| ChannelScaling::from_min_max(lo, hi))
        .collect()
}

/// Model inputs in [0, 1] of `windows` for a HAR model's stored scaling.
pub fn scaled_inputs(
    windows: &HarWindows,
    scaling: &crate::train::InputScaling,
) -> Result<Vec<f32>, DataError> {
    let features = scaling.har_features().ok_or_else(|| DataError::Shape {
        msg: "HAR windows need a model trained on HAR windows (per-channel scaling)".into(),
    })?;
    let raw = model_inputs(windows, features)?;
    Ok(scaling.apply(&raw, features.input_dim(windows.channels)))
}

/// What training on HAR windows needs: the model inputs of `train` in [0, 1] and the
/// scaling (fitted on `train`) that goes into the run's config.
pub fn har_training_data(
    train: &HarWindows,
    features: InputFeatures,
) -> Result<(crate::train::TrainData, crate::train::InputScaling), DataError> {
    let dim = features.input_dim(train.channels);
    let raw = model_inputs(train, features)?;
    let scaling = crate::train::InputScaling::HarChannels {
        channel_bits: train.channels.bits(),
        window_len: WINDOW_LEN,
        scaling: fit_input_scaling(&raw, dim, features),
        features,
    };
    let data = crate::train::TrainData {
        x01: scaling.apply(&raw, dim),
        rows: train.len(),
        cols: dim,
    };
    Ok((data, scaling))
}

/// Scales windows in place: `x` holds whole windows of `channels` (channel-major,
/// `channels.len() * WINDOW_LEN` values each), `scaling` one entry per channel.
/// Values outside the fitted range are clamped to [0, 1], as on the device.
pub fn apply_scaling(
    x: &mut [f32],
    channels: ChannelSet,
    scaling: &[ChannelScaling],
) -> Result<(), DataError> {
    let dim = channels.len() * WINDOW_LEN;
    if scaling.len() != channels.len() || dim == 0 || !x.len().is_multiple_of(dim) {
        return Err(DataError::Shape {
            msg: format!(
                "apply_scaling: {} values, {} scaling entries for {} channels ({channels}); \
                 need one entry per channel and whole windows of {dim} values",
                x.len(),
                scaling.len(),
                channels.len()
            ),
        });
    }
    for window in x.chunks_exact_mut(dim) {
        scale_window(window, scaling).map_err(|e| DataError::Shape { msg: e.to_string() })?;
    }
    Ok(())
}

/// A copy of `windows.x` scaled with `scaling` (see [`apply_scaling`]).
pub fn scaled(windows: &HarWindows, scaling: &[ChannelScaling]) -> Result<Vec<f32>, DataError> {
    let mut x = windows.x.clone();
    apply_scaling(&mut x, windows.channels, scaling)?;
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge_runtime::preprocess::Channel;

    #[test]
    fn fit_and_apply_map_train_range_to_unit_interval() {
        let channels =
            ChannelSet::single(Channel::TotalAccX).union(ChannelSet::single(Channel::BodyGyroZ));
        let mut w = HarWindows::new(channels);
        let window = |a: f32, g: f32| {
            let mut v = vec![a; WINDOW_LEN];
            v.extend(std::iter::repeat_n(g, WINDOW_LEN));
            v
        };
        w.push(&window(-1.0, 4.0), 1, 1);
        w.push(&window(3.0, 4.0), 2, 1);
        let s = fit_scaling(&w);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].offset, s[0].scale), (-1.0, 0.25));
        assert_eq!(
            s[1].scale, 0.0,
            "a constant channel must not divide by zero"
        );

        let mut x = window(1.0, 10.0);
        x.extend(window(5.0, -3.0));
        apply_scaling(&mut x, channels, &s).unwrap();
        assert_eq!(x[0], 0.5);
        assert_eq!(x[WINDOW_LEN], 0.0);
        assert_eq!(
            x[2 * WINDOW_LEN],
            1.0,
            "values above the train max clamp to 1"
        );

        let err = apply_scaling(&mut x[1..], channels, &s).unwrap_err();
        assert!(err.to_string().contains("whole windows"), "{err}");
    }

    #[test]
    fn spectrum_inputs_get_one_scaling_per_value_fitted_on_train() {
        let channels = ChannelSet::single(Channel::TotalAccX);
        let mut w = HarWindows::new(channels);
        // A still window at -1 g and one at +1 g with a 0.5 g tone in band 4 (bin 10).
        let tone = |mean: f32, amp: f32| -> Vec<f32> {
            (0..WINDOW_LEN)
                .map(|t| {
                    let phase = 2.0 * std::f32::consts::PI * 10.0 * t as f32 / WINDOW_LEN as f32;
                    mean + amp * phase.cos()
                })
                .collect()
        };
        w.push(&tone(-1.0, 0.0), 4, 1);
        w.push(&tone(1.0, 0.5), 1, 1);
        let (data, scaling) = har_training_data(&w, InputFeatures::BandSpectrum).unwrap();
        let dim = InputFeatures::BandSpectrum.input_dim(channels);
        assert_eq!((data.rows, data.cols), (2, dim));
        let crate::train::InputScaling::HarChannels { scaling: s, .. } = &scaling else {
            panic!("HAR scaling expected");
        };
        assert_eq!(s.len(), dim, "one entry per spectrum value");
        // Mean: -1 → 0, +1 → 1. Band 4: 0 → 0, 0.25 → 1.
        let row = |r: usize| &data.x01[r * dim..(r + 1) * dim];
        assert!((row(0)[0] - 0.0).abs() < 1e-6 && (row(1)[0] - 1.0).abs() < 1e-6);
        assert!(row(0)[5].abs() < 1e-6 && (row(1)[5] - 1.0).abs() < 1e-5);
        assert!(data.x01.iter().all(|v| (0.0..=1.0).contains(v)));
        // The stored scaling reproduces the training inputs from the windows.
        assert_eq!(scaled_inputs(&w, &scaling).unwrap(), data.x01);
        // Waveform scaling is per channel, as before.
        let (wave, wave_scaling) = har_training_data(&w, InputFeatures::Waveform).unwrap();
        assert_eq!(wave.cols, WINDOW_LEN);
        let crate::train::InputScaling::HarChannels { scaling: s, .. } = &wave_scaling else {
            panic!("HAR scaling expected");
        };
        assert_eq!(s, &fit_scaling(&w));
    }
}
