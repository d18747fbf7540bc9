//! What every board shares around edge-runtime's device loop: the flash region that holds
//! the model blob, found through the symbols each board's `memory.x` defines.
//!
//! The blob sits in its own region (`MODEL` in `memory.x`), at a fixed address per board,
//! so `cargo xtask flash --model-only` replaces the encoder without touching the firmware
//! and a firmware update keeps the model. At boot a board calls [`model`]: an erased
//! region, a blob longer than the region or any blob error comes back as a
//! [`ModelError`] with a short fixed reason ([`ModelError::reason`]), which the board logs
//! before it streams code-less frames.
#![no_std]

use edge_runtime::blob::ModelBlob;
pub use edge_runtime::device::ModelError;

unsafe extern "C" {
    /// First byte of the model region (`ORIGIN(MODEL)` in the board's `memory.x`).
    static __vsc_model_start: u8;
    /// One past its last byte (`ORIGIN(MODEL) + LENGTH(MODEL)`).
    static __vsc_model_end: u8;
}

/// The whole model region: flash that the program itself never writes.
pub fn model_region() -> &'static [u8] {
    let start = &raw const __vsc_model_start;
    let end = &raw const __vsc_model_end;
    let len = (end as usize).saturating_sub(start as usize);
    // SAFETY: the linker script defines both symbols as the bounds of the MODEL memory
    // region, which is mapped flash (or QEMU's code memory) for the program's whole
    // life; nothing in the program writes to it, so shared reads are sound.
    unsafe { core::slice::from_raw_parts(start, len) }
}

/// The validated model blob of the region, or why there is none.
pub fn model() -> Result<ModelBlob<'static>, ModelError> {
    edge_runtime::device::model_in_region(model_region())
}
