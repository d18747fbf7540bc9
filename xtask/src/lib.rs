//! The library part of xtask: modules that code outside the `cargo xtask` binary uses too
//! (the workspace's end-to-end tests in `tests/` build and run the ONNX exports).

pub mod card;
pub mod onnx;
