//! C ABI of edge-runtime for native Android and iOS apps: open an int8 model blob, push
//! timestamped IMU samples at any rate, poll the frames (one per 1.28 s window).
//!
//! The header `include/vsc_edge.h` is generated from this file by cbindgen
//! (`cargo xtask ffi`); the doc comments below are its documentation.
//!
//! Every function checks its pointers for NULL, takes lengths explicitly, and catches
//! panics (there should be none: edge-runtime never panics on input) so that no unwind
//! crosses the C boundary; a caught panic poisons the handle.

use std::collections::VecDeque;
use std::ffi::{CStr, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;

use edge_runtime::blob::{BlobError, ModelBlob};
use edge_runtime::encoder::Encoder;
use edge_runtime::frame::{self, Frame};
use edge_runtime::preprocess::ImuSample;
use edge_runtime::stream::TimedPipeline;

/// Version of this C ABI: bumped whenever a function signature, `VscFrame` or
/// `VscModelInfo` changes. Compare `vsc_edge_abi_version()` with it when loading the
/// shared library at run time.
pub const VSC_ABI_VERSION: u32 = 1;
/// Most latent dimensions of a model (the length of the per-dimension arrays of
/// `VscFrame`).
pub const VSC_MAX_LATENT: usize = 64;
/// Most bytes of one frame in wire format (`VscFrame::wire`).
pub const VSC_MAX_WIRE_LEN: usize = 423;
/// Frames the handle holds until they are polled; when a new frame finds the queue full,
/// the oldest queued frame is dropped (and counted, see `vsc_edge_dropped_frames`).
pub const VSC_QUEUE_FRAMES: usize = 16;
/// A message buffer of this many bytes holds every message in full.
pub const VSC_MESSAGE_CAPACITY: usize = 256;

/// `VscFrame::flags`: a sensor read failed (`vsc_edge_push_sensor_error`) or samples
/// were more than 200 ms apart since the previous frame; with `VSC_FLAG_NO_CODE`, for a
/// whole hop (64 samples at 50 Hz).
pub const VSC_FLAG_SENSOR_ERROR: u8 = 1 << 0;
/// `VscFrame::flags`: a sample with a NaN or infinite value was dropped.
pub const VSC_FLAG_NON_FINITE: u8 = 1 << 1;
/// `VscFrame::flags`: a sample was pushed with `saturated` true.
pub const VSC_FLAG_SATURATED: u8 = 1 << 2;
/// `VscFrame::flags`: the encoder rejected the window; the frame carries no code.
pub const VSC_FLAG_ENCODER_ERROR: u8 = 1 << 3;
/// `VscFrame::flags`: the frame carries no code (no active dimension, no activity).
pub const VSC_FLAG_NO_CODE: u8 = 1 << 4;
/// `VscFrame::flags`: a sample whose timestamp was not after the previous accepted one
/// was dropped.
pub const VSC_FLAG_TIMESTAMP: u8 = 1 << 5;

// The header states these numbers as literals (cbindgen does not evaluate paths into
// other crates); this keeps them equal to edge-runtime's.
const _: () = {
    assert!(VSC_MAX_LATENT == frame::MAX_LATENT);
    assert!(VSC_MAX_LATENT == edge_runtime::blob::MAX_LATENT);
    assert!(VSC_MAX_WIRE_LEN == frame::MAX_WIRE_LEN);
    assert!(VSC_MAX_WIRE_LEN <= u16::MAX as usize);
    assert!(VSC_FLAG_SENSOR_ERROR == frame::flags::SENSOR_ERROR);
    assert!(VSC_FLAG_NON_FINITE == frame::flags::NON_FINITE);
    assert!(VSC_FLAG_SATURATED == frame::flags::SATURATED);
    assert!(VSC_FLAG_ENCODER_ERROR == frame::flags::ENCODER_ERROR);
    assert!(VSC_FLAG_NO_CODE == frame::flags::NO_CODE);
    assert!(VSC_FLAG_TIMESTAMP == frame::flags::TIMESTAMP);
};

/// Result of a call. 0 is success; 1–99 are argument and state errors; 100 and above
/// name why a model blob failed validation (one per edge-runtime `BlobError` kind);
/// 200 and above say why a pushed sample was dropped (the stream goes on, and the next
/// frame carries the matching flag).
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VscStatus {
    Ok = 0,
    /// A required pointer argument is NULL.
    NullPointer = 1,
    /// A panic was caught inside the library (a bug); the handle is unusable, close it.
    Internal = 2,
    /// The handle had a caught panic earlier; close it and open a new one.
    Poisoned = 3,
    /// Fewer bytes than the blob's fixed header and CRC trailer.
    BlobTooShort = 100,
    /// The blob does not start with "VSCQ".
    BlobBadMagic = 101,
    /// A blob format version this library does not read.
    BlobUnsupportedVersion = 102,
    /// The blob's header-length field is wrong.
    BlobBadHeaderLen = 103,
    /// The blob's total-length field disagrees with the bytes given (truncated or
    /// trailing bytes).
    BlobTotalLength = 104,
    /// The blob's CRC-32 trailer does not match its content.
    BlobCrc = 105,
    /// The blob's channel mask is empty or names unknown channels.
    BlobBadChannels = 106,
    /// A dimension in the blob header is 0 or above its limit.
    BlobDimOutOfRange = 107,
    /// The blob's input dimension does not fit its channels and window length.
    BlobInputDimMismatch = 108,
    /// The blob's model-input code is unknown.
    BlobBadFeatures = 109,
    /// The blob's spike-head code is unknown.
    BlobBadSpikeHead = 110,
    /// The blob's dimensions need a different number of bytes than it has.
    BlobLength = 111,
    /// A reserved field of the blob is not zero.
    BlobReserved = 112,
    /// A scale in the blob header is invalid.
    BlobBadScale = 113,
    /// An input-scaling entry of the blob is invalid.
    BlobBadChannelScaling = 114,
    /// A weight scale of the blob is not finite and positive.
    BlobBadWeightScale = 115,
    /// A bias of the blob is out of range.
    BlobBiasOutOfRange = 116,
    /// A requantisation multiplier of the blob is negative.
    BlobNegativeMultiplier = 117,
    /// A requantisation shift of the blob is out of range.
    BlobShiftOutOfRange = 118,
    /// The blob's activity-class count is 1 or above the limit.
    BlobBadClassCount = 119,
    /// A class id of the blob's activity head is 0 or repeated.
    BlobBadClassId = 120,
    /// The blob is invalid for a reason this version of the C ABI has no code for (the
    /// message says which).
    BlobInvalid = 199,
    /// The sample has a NaN or infinite value; it was dropped.
    SampleNonFinite = 200,
    /// The sample's timestamp is not after the previous accepted sample's; it was
    /// dropped.
    SampleNonMonotonic = 201,
}

impl VscStatus {
    /// Every status, for the message table and its tests.
    const ALL: [VscStatus; 28] = [
        VscStatus::Ok,
        VscStatus::NullPointer,
        VscStatus::Internal,
        VscStatus::Poisoned,
        VscStatus::BlobTooShort,
        VscStatus::BlobBadMagic,
        VscStatus::BlobUnsupportedVersion,
        VscStatus::BlobBadHeaderLen,
        VscStatus::BlobTotalLength,
        VscStatus::BlobCrc,
        VscStatus::BlobBadChannels,
        VscStatus::BlobDimOutOfRange,
        VscStatus::BlobInputDimMismatch,
        VscStatus::BlobBadFeatures,
        VscStatus::BlobBadSpikeHead,
        VscStatus::BlobLength,
        VscStatus::BlobReserved,
        VscStatus::BlobBadScale,
        VscStatus::BlobBadChannelScaling,
        VscStatus::BlobBadWeightScale,
        VscStatus::BlobBiasOutOfRange,
        VscStatus::BlobNegativeMultiplier,
        VscStatus::BlobShiftOutOfRange,
        VscStatus::BlobBadClassCount,
        VscStatus::BlobBadClassId,
        VscStatus::BlobInvalid,
        VscStatus::SampleNonFinite,
        VscStatus::SampleNonMonotonic,
    ];

    /// The static message of a status (no details; see `vsc_edge_open`'s `message`).
    const fn message(self) -> &'static CStr {
        match self {
            VscStatus::Ok => c"ok",
            VscStatus::NullPointer => c"a required pointer argument is NULL",
            VscStatus::Internal => c"internal error (caught panic); close the handle",
            VscStatus::Poisoned => c"handle unusable after an internal error; close it",
            VscStatus::BlobTooShort => c"model blob: shorter than header + CRC",
            VscStatus::BlobBadMagic => c"model blob: magic is not \"VSCQ\"",
            VscStatus::BlobUnsupportedVersion => c"model blob: unsupported format version",
            VscStatus::BlobBadHeaderLen => c"model blob: wrong header length field",
            VscStatus::BlobTotalLength => {
                c"model blob: total-length field disagrees with the size (truncated or trailing bytes)"
            }
            VscStatus::BlobCrc => c"model blob: CRC-32 mismatch",
            VscStatus::BlobBadChannels => c"model blob: invalid channel mask",
            VscStatus::BlobDimOutOfRange => c"model blob: a dimension is out of range",
            VscStatus::BlobInputDimMismatch => {
                c"model blob: input_dim does not fit the channels and window length"
            }
            VscStatus::BlobBadFeatures => c"model blob: unknown model-input code",
            VscStatus::BlobBadSpikeHead => c"model blob: unknown spike head",
            VscStatus::BlobLength => c"model blob: length does not fit the dimensions",
            VscStatus::BlobReserved => c"model blob: a reserved field is not zero",
            VscStatus::BlobBadScale => c"model blob: invalid header scale",
            VscStatus::BlobBadChannelScaling => c"model blob: invalid input scaling",
            VscStatus::BlobBadWeightScale => c"model blob: invalid weight scale",
            VscStatus::BlobBiasOutOfRange => c"model blob: bias out of range",
            VscStatus::BlobNegativeMultiplier => {
                c"model blob: negative requantisation multiplier"
            }
            VscStatus::BlobShiftOutOfRange => c"model blob: requantisation shift out of range",
            VscStatus::BlobBadClassCount => c"model blob: invalid activity-class count",
            VscStatus::BlobBadClassId => c"model blob: activity class id 0 or repeated",
            VscStatus::BlobInvalid => c"model blob: invalid",
            VscStatus::SampleNonFinite => c"sample has a NaN or infinite value; dropped",
            VscStatus::SampleNonMonotonic => {
                c"sample timestamp not after the previous sample's; dropped"
            }
        }
    }
}

impl From<&BlobError> for VscStatus {
    fn from(e: &BlobError) -> VscStatus {
        match e {
            BlobError::TooShort { .. } => VscStatus::BlobTooShort,
            BlobError::BadMagic { .. } => VscStatus::BlobBadMagic,
            BlobError::UnsupportedVersion { .. } => VscStatus::BlobUnsupportedVersion,
            BlobError::BadHeaderLen { .. } => VscStatus::BlobBadHeaderLen,
            BlobError::TotalLength { .. } => VscStatus::BlobTotalLength,
            BlobError::Crc { .. } => VscStatus::BlobCrc,
            BlobError::BadChannels { .. } => VscStatus::BlobBadChannels,
            BlobError::DimOutOfRange { .. } => VscStatus::BlobDimOutOfRange,
            BlobError::InputDimMismatch { .. } => VscStatus::BlobInputDimMismatch,
            BlobError::BadFeatures { .. } => VscStatus::BlobBadFeatures,
            BlobError::BadSpikeHead { .. } => VscStatus::BlobBadSpikeHead,
            BlobError::Length { .. } => VscStatus::BlobLength,
            BlobError::Reserved { .. } => VscStatus::BlobReserved,
            BlobError::BadScale { .. } => VscStatus::BlobBadScale,
            BlobError::BadChannelScaling { .. } => VscStatus::BlobBadChannelScaling,
            BlobError::BadWeightScale { .. } => VscStatus::BlobBadWeightScale,
            BlobError::BiasOutOfRange { .. } => VscStatus::BlobBiasOutOfRange,
            BlobError::NegativeMultiplier { .. } => VscStatus::BlobNegativeMultiplier,
            BlobError::ShiftOutOfRange { .. } => VscStatus::BlobShiftOutOfRange,
            BlobError::BadClassCount { .. } => VscStatus::BlobBadClassCount,
            BlobError::BadClassId { .. } => VscStatus::BlobBadClassId,
            // A kind added to edge-runtime after this ABI version still gets a code (and
            // its full message), without breaking the build of this crate.
            #[allow(unreachable_patterns)]
            _ => VscStatus::BlobInvalid,
        }
    }
}

/// One window's code, copied out of the handle by `vsc_edge_poll`. The per-dimension
/// arrays hold `n_active` entries, in ascending dimension order; the rest is zero.
#[repr(C)]
#[derive(Clone, Debug, PartialEq)]
pub struct VscFrame {
    /// Bit j set ⇔ latent dimension j is active (γ_j > ½).
    pub spike_bits: u64,
    /// Frame counter since `vsc_edge_open` (wraps); a gap means frames were dropped.
    pub sequence: u32,
    /// Stream time when the window completed, in ms since the first accepted sample
    /// (20 ms per point of the 50 Hz grid).
    pub timestamp_ms: u32,
    /// μ_j = `mu_q[k]` × `mu_scale`.
    pub mu_scale: f32,
    /// `VSC_FLAG_*` bits: what happened to the input since the previous frame.
    pub flags: u8,
    /// J, the model's number of latent dimensions.
    pub latent_dim: u8,
    /// Number of active dimensions (set bits of `spike_bits`).
    pub n_active: u8,
    /// Predicted activity class id (1..=6 for HAR: walking, upstairs, downstairs,
    /// sitting, standing, lying); 0 when the model has no activity head or the frame no
    /// code.
    pub activity: u8,
    /// Score of the predicted class in the head's int8 units.
    pub activity_score: i8,
    /// Always 0.
    pub reserved: u8,
    /// Bytes used in `wire`.
    pub wire_len: u16,
    /// The active dimensions' indices.
    pub active_dims: [u8; VSC_MAX_LATENT],
    /// γ of the active dimensions, Q15 (γ = value / 32768).
    pub gamma_q15: [i16; VSC_MAX_LATENT],
    /// μ of the active dimensions in units of `mu_scale`.
    pub mu_q: [i16; VSC_MAX_LATENT],
    /// γ of the active dimensions (`gamma_q15` / 32768).
    pub gamma: [f32; VSC_MAX_LATENT],
    /// μ of the active dimensions (`mu_q` × `mu_scale`).
    pub mu: [f32; VSC_MAX_LATENT],
    /// The frame in wire format (0x00, COBS(version ‖ postcard ‖ CRC-32), 0x00), as the
    /// firmware sends it: write these bytes to a socket or file for `vsc listen`.
    pub wire: [u8; VSC_MAX_WIRE_LEN],
}

impl VscFrame {
    const ZERO: VscFrame = VscFrame {
        spike_bits: 0,
        sequence: 0,
        timestamp_ms: 0,
        mu_scale: 0.0,
        flags: 0,
        latent_dim: 0,
        n_active: 0,
        activity: 0,
        activity_score: 0,
        reserved: 0,
        wire_len: 0,
        active_dims: [0; VSC_MAX_LATENT],
        gamma_q15: [0; VSC_MAX_LATENT],
        mu_q: [0; VSC_MAX_LATENT],
        gamma: [0.0; VSC_MAX_LATENT],
        mu: [0.0; VSC_MAX_LATENT],
        wire: [0; VSC_MAX_WIRE_LEN],
    };

    fn fill_from(&mut self, f: &Frame) {
        *self = VscFrame::ZERO;
        self.spike_bits = f.spike_bits;
        self.sequence = f.sequence;
        self.timestamp_ms = f.timestamp_ms;
        self.mu_scale = f.mu_scale;
        self.flags = f.flags;
        self.latent_dim = f.latent_dim;
        self.activity = f.activity;
        self.activity_score = f.activity_score;
        let mut n_active = 0u8;
        // `active()` pairs each set bit with its γ and μ; a frame always has as many of
        // them as set bits (at most 64), so the zips below never cut anything short.
        for (k, ((j, gamma, mu), (&g_q, &m_q))) in f
            .active()
            .zip(f.gamma_q15.iter().zip(f.mu_q.iter()))
            .enumerate()
            .take(VSC_MAX_LATENT)
        {
            self.active_dims[k] = j as u8;
            self.gamma_q15[k] = g_q;
            self.mu_q[k] = m_q;
            self.gamma[k] = gamma;
            self.mu[k] = mu;
            n_active += 1;
        }
        self.n_active = n_active;
        // A frame built by the pipeline always fits MAX_WIRE_LEN; if it ever did not,
        // the frame still goes out, with no wire bytes.
        self.wire_len = f.encode(&mut self.wire).map_or(0, |n| n as u16);
    }
}

/// What `vsc_edge_model_info` reports about the open model.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VscModelInfo {
    /// The blob's CRC-32 trailer: identifies the model.
    pub blob_crc32: u32,
    /// Bytes of the blob.
    pub blob_len: u32,
    /// Bit c set ⇔ preprocessed channel c is a model input (0–2 body acc x y z, 3–5
    /// body gyro x y z, 6–8 total acc x y z).
    pub channel_bits: u16,
    /// Model input values per window.
    pub input_dim: u16,
    /// Hidden units.
    pub hidden_dim: u16,
    /// J, latent dimensions.
    pub latent_dim: u16,
    /// Classes of the blob's activity head (6 for HAR); 0 when it has none, and then
    /// `VscFrame::activity` is always 0.
    pub activity_classes: u16,
    /// Always 0.
    pub reserved: u16,
}

/// An open model and its stream state. Opaque: create with `vsc_edge_open`, free with
/// `vsc_edge_close`. Not thread-safe: use one handle from one thread at a time (a handle
/// may move between threads).
pub struct VscEdge {
    /// Borrows `blob`: dropped by hand, before `blob` is freed (see `Drop`).
    pipeline: std::mem::ManuallyDrop<TimedPipeline<Encoder<'static>>>,
    /// The copy of the caller's blob, from `Box::into_raw`; freed in `Drop`.
    blob: *mut [u8],
    info: VscModelInfo,
    queue: VecDeque<Frame>,
    dropped_frames: u64,
    /// Time of the last sample the resampler accepted, to tell the caller (through the
    /// status) which samples it drops; the frames carry the same verdict as flags.
    last_accepted_us: Option<u64>,
    poisoned: bool,
}

impl Drop for VscEdge {
    fn drop(&mut self) {
        // SAFETY: `pipeline` is dropped exactly once, here, and never used after.
        unsafe { std::mem::ManuallyDrop::drop(&mut self.pipeline) };
        // SAFETY: `blob` came from `Box::into_raw` in `open` and nothing borrows it any
        // more (the pipeline, its only borrower, is gone).
        drop(unsafe { Box::from_raw(self.blob) });
    }
}

impl VscEdge {
    fn open(bytes: &[u8]) -> Result<Box<VscEdge>, BlobError> {
        ModelBlob::parse(bytes)?;
        let blob: *mut [u8] = Box::into_raw(bytes.to_vec().into_boxed_slice());
        // SAFETY: the allocation lives until `Drop` frees it, after dropping the pipeline
        // that holds this reference; it is never written or moved meanwhile.
        let stored: &'static [u8] = unsafe { &*blob };
        let model = match ModelBlob::parse(stored) {
            Ok(model) => model,
            Err(e) => {
                // Cannot happen (same bytes as above), but must not leak if it did.
                // SAFETY: `stored` is not used after this point.
                drop(unsafe { Box::from_raw(blob) });
                return Err(e);
            }
        };
        let info = VscModelInfo {
            blob_crc32: model.crc(),
            blob_len: stored.len() as u32,
            channel_bits: model.channels().bits(),
            input_dim: model.input_dim() as u16,
            hidden_dim: model.hidden_dim() as u16,
            latent_dim: model.latent_dim() as u16,
            activity_classes: model
                .activity_head()
                .map_or(0, |head| head.classes() as u16),
            reserved: 0,
        };
        let pipeline = TimedPipeline::new(model.channels(), Encoder::new(model));
        Ok(Box::new(VscEdge {
            pipeline: std::mem::ManuallyDrop::new(pipeline),
            blob,
            info,
            queue: VecDeque::with_capacity(VSC_QUEUE_FRAMES),
            dropped_frames: 0,
            last_accepted_us: None,
            poisoned: false,
        }))
    }

    fn enqueue(queue: &mut VecDeque<Frame>, dropped: &mut u64, frame: Frame) {
        if queue.len() >= VSC_QUEUE_FRAMES {
            queue.pop_front();
            *dropped += 1;
        }
        queue.push_back(frame);
    }

    fn push(&mut self, t_us: u64, sample: ImuSample, saturated: bool) -> VscStatus {
        // The resampler's own verdict, stated again so the caller hears it now; the
        // pipeline drops the same samples and flags the next frame.
        let finite = sample
            .acc_g
            .iter()
            .chain(&sample.gyro_rad_s)
            .all(|v| v.is_finite());
        let status = if !finite {
            VscStatus::SampleNonFinite
        } else if self.last_accepted_us.is_some_and(|prev| t_us <= prev) {
            VscStatus::SampleNonMonotonic
        } else {
            self.last_accepted_us = Some(t_us);
            VscStatus::Ok
        };
        let (queue, dropped) = (&mut self.queue, &mut self.dropped_frames);
        self.pipeline.push(t_us, sample, saturated, |f| {
            VscEdge::enqueue(queue, dropped, f)
        });
        status
    }

    fn push_sensor_error(&mut self, t_us: u64) {
        let (queue, dropped) = (&mut self.queue, &mut self.dropped_frames);
        self.pipeline
            .push_sensor_error(t_us, |f| VscEdge::enqueue(queue, dropped, f));
    }
}

/// Runs `body` on the handle unless it is NULL or poisoned; a panic poisons it.
///
/// # Safety
/// `edge` is NULL or a live handle from `vsc_edge_open`, used by no other thread.
unsafe fn with_edge<T>(
    edge: *mut VscEdge,
    on_error: impl Fn(VscStatus) -> T,
    body: impl FnOnce(&mut VscEdge) -> T,
) -> T {
    // SAFETY: per this function's contract.
    let Some(edge) = (unsafe { edge.as_mut() }) else {
        return on_error(VscStatus::NullPointer);
    };
    if edge.poisoned {
        return on_error(VscStatus::Poisoned);
    }
    match catch_unwind(AssertUnwindSafe(|| body(&mut *edge))) {
        Ok(v) => v,
        Err(_) => {
            edge.poisoned = true;
            on_error(VscStatus::Internal)
        }
    }
}

/// Writes `text` NUL-terminated into `buf` (capacity `cap` bytes, NUL included),
/// truncated at a UTF-8 character boundary if needed. Nothing when `buf` is NULL or
/// `cap` is 0.
///
/// # Safety
/// `buf` is NULL or valid for `cap` bytes of writes.
unsafe fn write_message(text: &str, buf: *mut c_char, cap: usize) {
    if buf.is_null() || cap == 0 {
        return;
    }
    let mut n = text.len().min(cap - 1);
    while !text.is_char_boundary(n) {
        n -= 1;
    }
    // SAFETY: `n + 1 <= cap` bytes, per this function's contract.
    unsafe {
        ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), n);
        *buf.add(n) = 0;
    }
}

/// The ABI version this library implements (`VSC_ABI_VERSION` of its header).
#[unsafe(no_mangle)]
pub extern "C" fn vsc_edge_abi_version() -> u32 {
    VSC_ABI_VERSION
}

/// A static, NUL-terminated English message for a status code (never NULL; an unknown
/// code gives "unknown status code"). The string must not be freed.
#[unsafe(no_mangle)]
pub extern "C" fn vsc_status_message(status: i32) -> *const c_char {
    VscStatus::ALL
        .iter()
        .find(|s| **s as i32 == status)
        .map_or(c"unknown status code", |s| s.message())
        .as_ptr()
}

/// Validates a model blob (`.vscq`), copies it, and opens a stream on it.
///
/// - `blob`, `blob_len`: the blob's bytes (the library keeps its own copy; the caller's
///   buffer may be freed after the call).
/// - `out_edge`: receives the handle on success, NULL on failure.
/// - `message`, `message_capacity`: optional (NULL/0); receives a NUL-terminated message,
///   for a blob error the full reason with the field, row or byte offset, e.g.
///   "model blob: CRC-32 mismatch (stored 0x1234abcd, computed 0x89ab0123)"; "" on
///   success. `VSC_MESSAGE_CAPACITY` bytes hold any message; a shorter buffer gets the
///   message truncated.
///
/// Returns `VSC_STATUS_OK`, `VSC_STATUS_NULL_POINTER` (`blob` or `out_edge` NULL) or a
/// `VSC_STATUS_BLOB_*` code.
///
/// # Safety
/// `blob` must be valid for `blob_len` bytes of reads, `out_edge` for one pointer write,
/// `message` (when not NULL) for `message_capacity` bytes of writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vsc_edge_open(
    blob: *const u8,
    blob_len: usize,
    out_edge: *mut *mut VscEdge,
    message: *mut c_char,
    message_capacity: usize,
) -> VscStatus {
    let result = catch_unwind(|| {
        if out_edge.is_null() {
            return Err((VscStatus::NullPointer, String::from("out_edge is NULL")));
        }
        // SAFETY: checked non-NULL; valid for a write per the contract.
        unsafe { *out_edge = ptr::null_mut() };
        if blob.is_null() {
            return Err((VscStatus::NullPointer, String::from("blob is NULL")));
        }
        // SAFETY: non-NULL and valid for `blob_len` bytes per the contract.
        let bytes = unsafe { std::slice::from_raw_parts(blob, blob_len) };
        let edge = VscEdge::open(bytes).map_err(|e| (VscStatus::from(&e), e.to_string()))?;
        // SAFETY: as above.
        unsafe { *out_edge = Box::into_raw(edge) };
        Ok(())
    });
    let (status, text) = match result {
        Ok(Ok(())) => (VscStatus::Ok, String::new()),
        Ok(Err(error)) => error,
        Err(_) => (
            VscStatus::Internal,
            String::from("internal error (caught panic) while opening the blob"),
        ),
    };
    // SAFETY: per the contract.
    unsafe { write_message(&text, message, message_capacity) };
    status
}

/// Fills `*out` with the open model's dimensions.
///
/// # Safety
/// `edge` is NULL or a live handle; `out` is NULL or valid for one `VscModelInfo` write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vsc_edge_model_info(
    edge: *mut VscEdge,
    out: *mut VscModelInfo,
) -> VscStatus {
    if out.is_null() {
        return VscStatus::NullPointer;
    }
    // SAFETY: per the contract.
    unsafe {
        with_edge(
            edge,
            |e| e,
            |edge| {
                *out = edge.info;
                VscStatus::Ok
            },
        )
    }
}

/// Pushes one IMU sample measured at `t_us` (microseconds of any monotonic clock, e.g.
/// Android's `SensorEvent.timestamp` / 1000 or iOS's `CMLogItem.timestamp` × 10⁶), at
/// any rate: the library resamples onto the model's 50 Hz grid.
///
/// Units and axes are those of the training data (UCI HAPT, a phone worn at the waist):
/// acceleration *including gravity* in g (`ax_g`, `ay_g`, `az_g`; divide m/s² by
/// 9.80665) and angular rate in rad/s (`gx_rad_s`, `gy_rad_s`, `gz_rad_s`), on the
/// phone axes described in the README ("Phone axes"). `saturated`: the sensor reported
/// a value at the end of its range (sets `VSC_FLAG_SATURATED`).
///
/// Returns `VSC_STATUS_OK`, or why the sample was dropped (`VSC_STATUS_SAMPLE_NON_FINITE`,
/// `VSC_STATUS_SAMPLE_NON_MONOTONIC`: the stream continues, and the next frame carries
/// the matching flag), or `VSC_STATUS_NULL_POINTER` / `VSC_STATUS_POISONED`.
///
/// # Safety
/// `edge` is NULL or a live handle used by no other thread.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)] // Six scalars are the simplest shape for JNI and Swift.
pub unsafe extern "C" fn vsc_edge_push(
    edge: *mut VscEdge,
    t_us: u64,
    ax_g: f32,
    ay_g: f32,
    az_g: f32,
    gx_rad_s: f32,
    gy_rad_s: f32,
    gz_rad_s: f32,
    saturated: bool,
) -> VscStatus {
    let sample = ImuSample {
        acc_g: [ax_g, ay_g, az_g],
        gyro_rad_s: [gx_rad_s, gy_rad_s, gz_rad_s],
    };
    // SAFETY: per the contract.
    unsafe { with_edge(edge, |e| e, |edge| edge.push(t_us, sample, saturated)) }
}

/// Reports a failed sensor read at `t_us`: the next frame is flagged
/// `VSC_FLAG_SENSOR_ERROR`. (Silence needs no call: samples more than 200 ms apart flag
/// the frames of the gap the same way.)
///
/// # Safety
/// `edge` is NULL or a live handle used by no other thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vsc_edge_push_sensor_error(edge: *mut VscEdge, t_us: u64) -> VscStatus {
    // SAFETY: per the contract.
    unsafe {
        with_edge(
            edge,
            |e| e,
            |edge| {
                edge.push_sensor_error(t_us);
                VscStatus::Ok
            },
        )
    }
}

/// Moves the oldest queued frame into `*out`. Returns 1 when a frame was written, 0
/// when the queue is empty (then `*out` is untouched), or a negative status
/// (−`VSC_STATUS_NULL_POINTER`, −`VSC_STATUS_POISONED`, −`VSC_STATUS_INTERNAL`).
///
/// The queue holds `VSC_QUEUE_FRAMES` frames (one frame per 1.28 s of samples); poll
/// at least that often or the oldest frames are dropped (`vsc_edge_dropped_frames`).
///
/// # Safety
/// `edge` is NULL or a live handle used by no other thread; `out` is NULL or valid for
/// one `VscFrame` write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vsc_edge_poll(edge: *mut VscEdge, out: *mut VscFrame) -> i32 {
    if out.is_null() {
        return -(VscStatus::NullPointer as i32);
    }
    // SAFETY: per the contract.
    unsafe {
        with_edge(
            edge,
            |e| -(e as i32),
            |edge| match edge.queue.pop_front() {
                Some(frame) => {
                    (*out).fill_from(&frame);
                    1
                }
                None => 0,
            },
        )
    }
}

/// Frames dropped so far because the queue was full when a new frame completed (0 for
/// a NULL handle).
///
/// # Safety
/// `edge` is NULL or a live handle used by no other thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vsc_edge_dropped_frames(edge: *mut VscEdge) -> u64 {
    // SAFETY: per the contract.
    unsafe { with_edge(edge, |_| 0, |edge| edge.dropped_frames) }
}

/// Frees the handle and its copy of the blob. NULL is ignored. The handle must not be
/// used after this call.
///
/// # Safety
/// `edge` is NULL or a live handle from `vsc_edge_open`, not closed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vsc_edge_close(edge: *mut VscEdge) {
    if edge.is_null() {
        return;
    }
    // SAFETY: the handle came from `Box::into_raw` in `vsc_edge_open`, per the contract.
    let edge = unsafe { Box::from_raw(edge) };
    // A panic inside a destructor cannot happen here (no user code runs), but must not
    // unwind into C either.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(edge)));
}

#[cfg(test)]
mod tests;
