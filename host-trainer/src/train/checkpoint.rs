//! Atomic checkpoints: `RUN_DIR/checkpoints/step-NNNNNNNN/{model.bpk, optim.bpk, state.json}`.
//!
//! A checkpoint directory is first written as `step-NNNNNNNN.tmp`, then renamed; afterwards
//! `checkpoints/LATEST` (itself written via temp + rename) is pointed at it and older
//! checkpoints are removed. A kill at any point therefore leaves either the previous complete
//! checkpoint or the new one; leftover `.tmp` directories are ignored and cleaned up.

use std::fs;
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::TrainError;

pub const CHECKPOINT_DIR: &str = "checkpoints";
pub const LATEST_FILE: &str = "LATEST";
pub const MODEL_FILE: &str = "model.bpk";
pub const OPTIM_FILE: &str = "optim.bpk";
pub const STATE_FILE: &str = "state.json";

/// Exact state of the host RNG (ChaCha8: key, stream, position).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RngState {
    pub seed_hex: String,
    pub stream: u64,
    /// 128-bit word position, as a decimal string (JSON numbers are not 128-bit safe).
    pub word_pos: String,
}

impl RngState {
    pub fn capture(rng: &ChaCha8Rng) -> Self {
        let seed_hex = rng.get_seed().iter().map(|b| format!("{b:02x}")).collect();
        RngState {
            seed_hex,
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos().to_string(),
        }
    }

    pub fn restore(&self) -> Option<ChaCha8Rng> {
        if self.seed_hex.len() != 64 {
            return None;
        }
        let mut seed = [0u8; 32];
        for (i, b) in seed.iter_mut().enumerate() {
            *b = u8::from_str_radix(self.seed_hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        let mut rng = ChaCha8Rng::from_seed(seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(self.word_pos.parse().ok()?);
        Some(rng)
    }
}

/// Non-tensor training state saved with every checkpoint.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct CheckpointState {
    /// Number of optimiser steps completed.
    pub step: u64,
    pub rng: RngState,
    /// Loss of the last completed step (for the log).
    pub last_loss: f32,
}

pub fn checkpoints_root(run_dir: &Path) -> PathBuf {
    run_dir.join(CHECKPOINT_DIR)
}

fn step_dir_name(step: u64) -> String {
    format!("step-{step:08}")
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// [`crate::fsio::write_atomic`] with the trainer's error type.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    crate::fsio::write_atomic(path, bytes).map_err(io_err(path))
}

/// Writes one checkpoint. `write_tensors` stores the model and optimiser files into the
/// directory it is given.
pub fn write_checkpoint(
    run_dir: &Path,
    state: &CheckpointState,
    write_tensors: impl FnOnce(&Path) -> Result<(), TrainError>,
) -> Result<PathBuf, TrainError> {
    let root = checkpoints_root(run_dir);
    fs::create_dir_all(&root).map_err(io_err(&root))?;
    let name = step_dir_name(state.step);
    let tmp = root.join(format!("{name}.tmp"));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
    }
    fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
    write_tensors(&tmp)?;
    let json = serde_json::to_vec_pretty(state).expect("checkpoint state serialises");
    let state_path = tmp.join(STATE_FILE);
    fs::write(&state_path, json).map_err(io_err(&state_path))?;
    let final_dir = root.join(&name);
    if final_dir.exists() {
        fs::remove_dir_all(&final_dir).map_err(io_err(&final_dir))?;
    }
    fs::rename(&tmp, &final_dir).map_err(io_err(&final_dir))?;
    write_atomic(&root.join(LATEST_FILE), name.as_bytes())?;
    // Only now is the older checkpoint redundant.
    prune(&root, &name);
    Ok(final_dir)
}

fn prune(root: &Path, keep: &str) {
    if let Ok(entries) = fs::read_dir(root) {
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with("step-") && n != keep {
                // Best effort: a leftover directory is harmless.
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
}

/// A complete checkpoint on disk.
#[derive(Clone, Debug)]
pub struct CheckpointOnDisk {
    pub dir: PathBuf,
    pub state: CheckpointState,
}

fn read_complete(dir: &Path) -> Result<Option<CheckpointOnDisk>, TrainError> {
    let state_path = dir.join(STATE_FILE);
    if !state_path.is_file() || !dir.join(MODEL_FILE).is_file() || !dir.join(OPTIM_FILE).is_file() {
        return Ok(None);
    }
    let text = fs::read_to_string(&state_path).map_err(io_err(&state_path))?;
    let state: CheckpointState = serde_json::from_str(&text).map_err(|e| TrainError::Format {
        path: state_path.clone(),
        msg: e.to_string(),
    })?;
    Ok(Some(CheckpointOnDisk {
        dir: dir.to_path_buf(),
        state,
    }))
}

/// Finds the checkpoint to resume from: the one named in `LATEST`, else the complete
/// `step-*` directory with the highest step (a kill between rename and pointer update).
/// `.tmp` directories are never used.
pub fn find_latest(run_dir: &Path) -> Result<Option<CheckpointOnDisk>, TrainError> {
    let root = checkpoints_root(run_dir);
    if !root.is_dir() {
        return Ok(None);
    }
    if let Ok(name) = fs::read_to_string(root.join(LATEST_FILE)) {
        let name = name.trim();
        if !name.ends_with(".tmp")
            && let Some(c) = read_complete(&root.join(name))?
        {
            return Ok(Some(c));
        }
    }
    let mut best: Option<CheckpointOnDisk> = None;
    for e in fs::read_dir(&root).map_err(io_err(&root))?.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with("step-")
            && !n.ends_with(".tmp")
            && let Some(c) = read_complete(&e.path())?
            && best.as_ref().is_none_or(|b| c.state.step > b.state.step)
        {
            best = Some(c);
        }
    }
    Ok(best)
}

/// Removes `.tmp` leftovers of an interrupted write.
pub fn remove_stale_temps(run_dir: &Path) {
    if let Ok(entries) = fs::read_dir(checkpoints_root(run_dir)) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().ends_with(".tmp") {
                let p = e.path();
                let _ = if p.is_dir() {
                    fs::remove_dir_all(p)
                } else {
                    fs::remove_file(p)
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn rng_state_round_trips_mid_stream() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..13 {
            let _: u32 = rng.random();
        }
        let mut restored = RngState::capture(&rng).restore().unwrap();
        let a: Vec<u64> = (0..5).map(|_| rng.random()).collect();
        let b: Vec<u64> = (0..5).map(|_| restored.random()).collect();
        assert_eq!(a, b);
    }
}
