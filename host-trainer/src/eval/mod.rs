//! Evaluation of trained models (issue 4): metrics on plain slices, the linear probe,
//! and (with the model) the `vsc eval` pipeline.

pub mod ablation;
pub mod controlled;
pub mod metrics;
pub mod pipeline;
pub mod probe;
