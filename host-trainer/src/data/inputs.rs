//! HAR windows turned into model inputs: the device's feature code, then the run's
//! [`InputScaling`] (fitted on the training split only, see [`crate::scaling`]).

use edge_runtime::preprocess::{InputFeatures, WINDOW_LEN};

use super::DataError;
use super::windows::HarWindows;
use crate::scaling::{InputScaling, fit_input_scaling};
use crate::train::TrainData;

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

/// Model inputs in [0, 1] of `windows` for a HAR model's stored scaling. Values outside
/// the fitted range are clamped to [0, 1], as on the device.
pub fn scaled_inputs(windows: &HarWindows, scaling: &InputScaling) -> Result<Vec<f32>, DataError> {
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
) -> Result<(TrainData, InputScaling), DataError> {
    let dim = features.input_dim(train.channels);
    let raw = model_inputs(train, features)?;
    let scaling = InputScaling::HarChannels {
        channel_bits: train.channels.bits(),
        window_len: WINDOW_LEN,
        scaling: fit_input_scaling(&raw, dim, features),
        features,
    };
    let data = TrainData {
        x01: scaling.apply(&raw, dim),
        rows: train.len(),
        cols: dim,
    };
    Ok((data, scaling))
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge_runtime::preprocess::{Channel, ChannelScaling, ChannelSet};

    #[test]
    fn waveform_scaling_maps_train_range_of_each_channel_to_unit_interval() {
        let channels =
            ChannelSet::single(Channel::TotalAccX).union(ChannelSet::single(Channel::BodyGyroZ));
        let window = |a: f32, g: f32| {
            let mut v = vec![a; WINDOW_LEN];
            v.extend(std::iter::repeat_n(g, WINDOW_LEN));
            v
        };
        let mut train = HarWindows::new(channels);
        train.push(&window(-1.0, 4.0), 1, 1);
        train.push(&window(3.0, 4.0), 2, 1);
        let (data, scaling) = har_training_data(&train, InputFeatures::Waveform).unwrap();
        let s = scaling.har_channels().expect("HAR scaling");
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].offset, s[0].scale), (-1.0, 0.25));
        assert_eq!(
            s[1].scale, 0.0,
            "a constant channel must not divide by zero"
        );
        assert_eq!((data.rows, data.cols), (2, 2 * WINDOW_LEN));
        assert_eq!((data.x01[0], data.x01[2 * WINDOW_LEN]), (0.0, 1.0));

        let mut test = HarWindows::new(channels);
        test.push(&window(1.0, 10.0), 1, 1);
        test.push(&window(5.0, -3.0), 1, 1);
        let x = scaled_inputs(&test, &scaling).unwrap();
        assert_eq!(x[0], 0.5);
        assert_eq!(x[WINDOW_LEN], 0.0);
        assert_eq!(
            x[2 * WINDOW_LEN],
            1.0,
            "values above the train max clamp to 1"
        );

        let err = scaled_inputs(&test, &InputScaling::Identity).unwrap_err();
        assert!(err.to_string().contains("trained on HAR windows"), "{err}");
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
        assert_eq!(
            scaling.har_channels().expect("HAR scaling").len(),
            dim,
            "one entry per spectrum value"
        );
        // Mean: -1 → 0, +1 → 1. Band 4: 0 → 0, 0.25 → 1.
        let row = |r: usize| &data.x01[r * dim..(r + 1) * dim];
        assert!((row(0)[0] - 0.0).abs() < 1e-6 && (row(1)[0] - 1.0).abs() < 1e-6);
        assert!(row(0)[5].abs() < 1e-6 && (row(1)[5] - 1.0).abs() < 1e-5);
        assert!(data.x01.iter().all(|v| (0.0..=1.0).contains(v)));
        // The stored scaling reproduces the training inputs from the windows.
        assert_eq!(scaled_inputs(&w, &scaling).unwrap(), data.x01);
        // Waveform scaling is one entry per channel, over every sample of it.
        let (wave, wave_scaling) = har_training_data(&w, InputFeatures::Waveform).unwrap();
        assert_eq!(wave.cols, WINDOW_LEN);
        let (lo, hi) =
            w.x.iter()
                .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        assert_eq!(
            wave_scaling.har_channels().expect("HAR scaling"),
            &[ChannelScaling::from_min_max(lo, hi)]
        );
    }
}
