//! The library part of xtask: modules that code outside the `cargo xtask` binary uses too
//! (the workspace's end-to-end tests in `tests/` build and run the ONNX exports).

pub mod card;
pub mod onnx;

use std::path::{Path, PathBuf};

pub use host_trainer::data::in_ci;

/// The workspace root (xtask lives one level below it).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// Writes `bytes` to `path` atomically ([`host_trainer::fsio::write_atomic`]), the error
/// naming the file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    host_trainer::fsio::write_atomic(path, bytes)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
}
