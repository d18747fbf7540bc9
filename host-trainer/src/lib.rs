//! Host side of the project: data loading, the burn VSC model and its baselines,
//! training, evaluation and the `vsc` command line.

pub mod api;
pub mod cli;
pub mod data;
pub mod matrix;
pub mod model;
pub mod train;
pub mod eval;
pub mod smiley;
pub mod plot;
pub mod listen;
pub mod report;
