//! The `vsc` subcommands, one module per top-level command (`vsc data …` in [`data`]).
//! They live in the library so that xtask (`cargo xtask run`) can call them too.
//! `anyhow` is used here only: this is the command-line edge.

pub mod ablation;
pub mod data;
pub mod eval;
pub mod matrix;
pub mod train;

use edge_runtime::preprocess::ChannelSet;

/// clap value parser for `--channels` (`all`, `acc`, `total_acc,body_gyro`, `body_acc_x`, …).
pub fn parse_channel_set(names: &str) -> Result<ChannelSet, String> {
    ChannelSet::from_names(names).map_err(|e| e.to_string())
}
