//! Model-input scaling into [0, 1], per channel, fitted on the training split only.
//!
//! The constants are data: they travel with every model (checkpoint config and blob),
//! and the device applies them with the same `ChannelScaling::apply` used here.

use edge_runtime::preprocess::{ChannelScaling, ChannelSet, WINDOW_LEN, scale_window};

use super::DataError;
use super::windows::HarWindows;

/// Per selected channel (in `Channel` order), min/max over every sample of every
/// window in `train`, mapped onto [0, 1]. A constant channel gets `scale = 0` (maps to 0);
/// no windows at all gives `offset = 0, scale = 0` for every channel.
pub fn fit_scaling(train: &HarWindows) -> Vec<ChannelScaling> {
    let n_channels = train.channels.len();
    let mut min = vec![f32::INFINITY; n_channels];
    let mut max = vec![f32::NEG_INFINITY; n_channels];
    for window in train.x.chunks_exact(train.dim) {
        for (channel, row) in window.chunks_exact(WINDOW_LEN).enumerate() {
            for &x in row {
                min[channel] = min[channel].min(x);
                max[channel] = max[channel].max(x);
            }
        }
    }
    min.iter()
        .zip(&max)
        .map(|(&lo, &hi)| ChannelScaling::from_min_max(lo, hi))
        .collect()
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
}
