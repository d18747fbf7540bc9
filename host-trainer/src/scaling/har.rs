//! HAR model inputs: one device [`ChannelScaling`] per block of
//! `InputFeatures::scaling_block_len` consecutive values (a channel of a waveform, one
//! value of a spectrum), fitted on the training windows only.
//!
//! The constants travel with every model (checkpoint config and blob), and the device
//! applies them with the same `ChannelScaling::apply` used here.

use edge_runtime::preprocess::{ChannelScaling, InputFeatures, WINDOW_LEN};

use super::minmax::MinMaxFitter;

/// Min/max over the training rows of every block of `features.scaling_block_len(WINDOW_LEN)`
/// consecutive model-input values, mapped onto [0, 1]. `raw` is `rows × dim` (see
/// `crate::data::model_inputs`). A constant block gets `scale = 0` (maps to 0); no rows at
/// all gives `offset = 0, scale = 0` for every block.
pub fn fit_input_scaling(raw: &[f32], dim: usize, features: InputFeatures) -> Vec<ChannelScaling> {
    let mut fitter = MinMaxFitter::per_block(dim, features.scaling_block_len(WINDOW_LEN));
    fitter.update(raw);
    fitter
        .bounds()
        .map(|(lo, hi)| ChannelScaling::from_min_max(lo, hi))
        .collect()
}

/// Maps one row of model inputs into [0, 1] in place, `scaling[k]` on block `k`.
pub(super) fn apply_row(scaling: &[ChannelScaling], block_len: usize, row: &mut [f32]) {
    for (block, ch) in row.chunks_mut(block_len.max(1)).zip(scaling) {
        for v in block {
            *v = ch.apply(*v);
        }
    }
}

/// Per column of `cols`, `(lo, range)` with `x = lo + x01 · range` (a constant block gets
/// range 0 and comes back as its offset; columns past the last block use the last one).
pub(super) fn column_ranges(
    scaling: &[ChannelScaling],
    block_len: usize,
    cols: usize,
) -> Vec<(f32, f32)> {
    let block_len = block_len.max(1);
    (0..cols)
        .map(|c| {
            let ch = scaling[(c / block_len).min(scaling.len() - 1)];
            let range = if ch.scale > 0.0 { 1.0 / ch.scale } else { 0.0 };
            (ch.offset, range)
        })
        .collect()
}
