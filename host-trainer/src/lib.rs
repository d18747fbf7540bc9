//! Host side of the project: data loading, the burn VSC model and its baselines,
//! training, evaluation and the `vsc` command line.

pub mod api;
pub mod cli;
pub mod data;
pub mod eval;
pub mod fsio;
pub mod listen;
pub mod matrix;
pub mod model;
pub mod plot;
pub mod report;
pub mod scaling;
pub mod serve;
pub mod smiley;
pub mod train;

/// The README's Rust examples, compiled and run as doc tests so the docs keep working.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
