//! The int8 model blob (`.vscq`): read in place from a `&[u8]` (e.g. in flash), no heap,
//! no copy of the weights, every malformed input a typed [`BlobError`].
//!
//! # Layout (format version 4), all integers and floats little-endian, no padding
//!
//! Fields are read byte by byte (`from_le_bytes`), so the blob may sit at any address.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `b"VSCQ"` |
//! | 4 | 2 | format version `u16` (= [`FORMAT_VERSION`]) |
//! | 6 | 2 | header length `u16` (= [`HEADER_LEN`]) |
//! | 8 | 4 | total length `u32`, including the CRC trailer |
//! | 12 | 2 | channel bitmask `u16` ([`ChannelSet::bits`]) |
//! | 14 | 2 | `window_len` `u16` (samples per channel, 1..=[`WINDOW_LEN`]; [`WINDOW_LEN`] for spectra) |
//! | 16 | 2 | `input_dim` `u16` (= channels × values per channel, ≤ [`MAX_INPUT`]) |
//! | 18 | 2 | `hidden_dim` `u16` (1..=[`MAX_HIDDEN`]) |
//! | 20 | 2 | `latent_dim` `u16` (1..=[`MAX_LATENT`]) |
//! | 22 | 2 | model input [`InputFeatures::code`] `u16`: 0 waveform (values per channel = `window_len`), 1 band spectrum (33); version 1 blobs have 0 here |
//! | 24 | 4 | `input_scale` `f32`: real value of one input step (= [`INPUT_SCALE`] = 1/255) |
//! | 28 | 4 | `hidden_scale` `f32`: real value of one step of the `u8` hidden activation |
//! | 32 | 4 | `mu_scale` `f32`: real value of one step of the `i16` slab mean |
//! | 36 | 4 | `v_scale` `f32`: real value of one step of the requantised γ pre-activation (= [`V_SCALE`] = 2⁻¹⁶) |
//! | 40 | 2 | spike head [`SpikeHead::code`] `u16`: 0 paper (log γ = −ReLU(−v)), 1 sigmoid; versions 1 and 2 have 0 here |
//! | 42 | 2 | activity classes K `u16`: 0 = no activity head, else 2..=[`MAX_CLASSES`]; versions 1–3 have 0 here |
//! | 44 | 4 | reserved, 0 |
//! | 48 | 8·S | input scaling, `offset` `f32`, `scale` `f32`: S = channels for waveforms (one per window row), S = `input_dim` for spectra (one per value) |
//! | … | | hidden layer (rows = `hidden_dim`, cols = `input_dim`), see below |
//! | … | | μ head (rows = `latent_dim`, cols = `hidden_dim`) |
//! | … | | γ head (rows = `latent_dim`, cols = `hidden_dim`), with thresholds |
//! | … | K | only with K > 0: class id `u8` of each head row (e.g. the HAR activity 1..=6) |
//! | … | | only with K > 0: activity head (rows = K, cols = `latent_dim`), see [`ActivityHead`] |
//! | total−4 | 4 | CRC-32/IEEE (`u32`) of every byte before it |
//!
//! A layer section with R rows and K columns is, in order:
//! `w_scale: [f32; R]` (per-output-channel symmetric weight scale, informational: the
//! encoder never reads it), `bias: [i32; R]` (in units of input scale × `w_scale`,
//! |bias| ≤ [`MAX_ABS_BIAS`]), only for the γ head `threshold: [i32; R]`,
//! `multiplier: [i32; R]` (≥ 0), `shift: [u8; R]` (1..=[`MAX_SHIFT`]),
//! `weights: [i8; R·K]` row-major (row r = output r).
//!
//! The integer semantics of these numbers are documented in [`crate::encoder`].

use core::fmt;

use crate::preprocess::{ChannelScaling, ChannelSet, InputFeatures, WINDOW_LEN};
use crate::spike::SpikeHead;

/// First four bytes of every blob.
pub const MAGIC: [u8; 4] = *b"VSCQ";
/// The format version this code writes. It also reads version 1 (waveform models only,
/// byte 22 reserved), version 2 (byte 40 reserved: the paper's spike head) and version 3
/// (byte 42 reserved: no activity head), which differ in nothing else.
pub const FORMAT_VERSION: u16 = 4;
/// Bytes before the per-channel scaling.
pub const HEADER_LEN: usize = 48;
/// Bytes of the CRC trailer.
pub const CRC_LEN: usize = 4;
/// Most latent dimensions (spike bits fit one `u64`).
pub const MAX_LATENT: usize = 64;
/// Most hidden units (size of the encoder's hidden buffer on the stack).
pub const MAX_HIDDEN: usize = 512;
/// Most model inputs: 9 channels × 128 samples.
pub const MAX_INPUT: usize = crate::preprocess::MAX_CHANNELS * WINDOW_LEN;
/// Largest right shift of a requantisation multiplier.
pub const MAX_SHIFT: u8 = 62;
/// Largest |bias|: with it no accumulator can overflow `i32`
/// (255 · 127 · [`MAX_INPUT`] + 2³⁰ < 2³¹).
pub const MAX_ABS_BIAS: i32 = 1 << 30;
/// Real value of one step of the quantised input: x01 ∈ [0, 1] ↦ 0..=255.
pub const INPUT_SCALE: f32 = 1.0 / 255.0;
/// Real value of one step of the requantised γ pre-activation `v_q` (Q16).
pub const V_SCALE: f32 = 1.0 / 65536.0;
/// Most classes of an activity head.
pub const MAX_CLASSES: usize = 16;

// The accumulator bound claimed by MAX_ABS_BIAS.
const _: () = assert!(255 * 127 * MAX_INPUT as i64 + MAX_ABS_BIAS as i64 <= i32::MAX as i64);

/// Which part of the model a [`BlobError`] refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Hidden,
    Mu,
    Gamma,
    Activity,
}

impl Section {
    pub const fn name(self) -> &'static str {
        match self {
            Section::Hidden => "hidden layer",
            Section::Mu => "mu head",
            Section::Gamma => "gamma head",
            Section::Activity => "activity head",
        }
    }
}

/// Everything that can be wrong with a blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobError {
    /// Fewer bytes than the fixed header and trailer.
    TooShort { len: usize },
    /// The first four bytes are not [`MAGIC`].
    BadMagic { found: [u8; 4] },
    /// A format version this code does not read.
    UnsupportedVersion { found: u16 },
    /// The header length field is not [`HEADER_LEN`].
    BadHeaderLen { found: u16 },
    /// The total-length field disagrees with the number of bytes given (truncated or
    /// trailing bytes).
    TotalLength { field: u32, actual: usize },
    /// The CRC trailer does not match the content.
    Crc { stored: u32, computed: u32 },
    /// Empty channel mask or bits above channel 8.
    BadChannels { bits: u16 },
    /// A dimension is 0 or above its limit.
    DimOutOfRange {
        field: &'static str,
        value: u16,
        max: u16,
    },
    /// `input_dim` ≠ channels × values per channel of the model input.
    InputDimMismatch {
        input_dim: u16,
        channels: u16,
        window_len: u16,
    },
    /// The model-input code at byte 22 is unknown.
    BadFeatures { code: u16 },
    /// The spike-head code at byte 40 is unknown.
    BadSpikeHead { code: u16 },
    /// The activity-class count at byte 42 is 1 or above [`MAX_CLASSES`].
    BadClassCount { count: u16 },
    /// Class id `class_id` of activity-head row `row` is 0 or repeats an earlier row's.
    BadClassId { row: usize, class_id: u8 },
    /// The dimensions need `expected` bytes in total, the blob has `actual`.
    Length { expected: usize, actual: usize },
    /// A reserved field is not zero.
    Reserved { offset: usize },
    /// A header scale is not finite and positive, or a fixed scale has the wrong value.
    BadScale { field: &'static str },
    /// Channel `index` has a non-finite offset or a scale that is negative or not finite.
    BadChannelScaling { index: usize },
    /// Row `row` of `section` has a weight scale that is not finite and positive.
    BadWeightScale { section: Section, row: usize },
    /// Row `row` of `section` has |bias| > [`MAX_ABS_BIAS`].
    BiasOutOfRange {
        section: Section,
        row: usize,
        value: i32,
    },
    /// Row `row` of `section` has a negative multiplier.
    NegativeMultiplier {
        section: Section,
        row: usize,
        value: i32,
    },
    /// Row `row` of `section` has a shift outside 1..=[`MAX_SHIFT`].
    ShiftOutOfRange {
        section: Section,
        row: usize,
        value: u8,
    },
}

impl fmt::Display for BlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BlobError::TooShort { len } => write!(
                f,
                "model blob: {len} bytes, shorter than header + CRC ({} bytes)",
                HEADER_LEN + CRC_LEN
            ),
            BlobError::BadMagic { found } => {
                write!(f, "model blob: magic {found:02x?} is not \"VSCQ\"")
            }
            BlobError::UnsupportedVersion { found } => write!(
                f,
                "model blob: format version {found}, this build reads versions 1 to {FORMAT_VERSION}"
            ),
            BlobError::BadHeaderLen { found } => write!(
                f,
                "model blob: header length field is {found}, expected {HEADER_LEN}"
            ),
            BlobError::TotalLength { field, actual } => write!(
                f,
                "model blob: total-length field says {field} bytes, got {actual} (truncated or trailing bytes)"
            ),
            BlobError::Crc { stored, computed } => write!(
                f,
                "model blob: CRC-32 mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
            BlobError::BadChannels { bits } => {
                write!(f, "model blob: invalid channel mask {bits:#06x}")
            }
            BlobError::DimOutOfRange { field, value, max } => {
                write!(f, "model blob: {field} = {value}, must be in 1..={max}")
            }
            BlobError::InputDimMismatch {
                input_dim,
                channels,
                window_len,
            } => write!(
                f,
                "model blob: input_dim = {input_dim} does not fit {channels} channels of {window_len}-sample windows"
            ),
            BlobError::BadFeatures { code } => {
                write!(f, "model blob: unknown model-input code {code} at byte 22")
            }
            BlobError::Length { expected, actual } => write!(
                f,
                "model blob: the dimensions need {expected} bytes, the blob has {actual}"
            ),
            BlobError::BadSpikeHead { code } => write!(
                f,
                "model blob: unknown spike head {code} at byte 40 (0 paper, 1 sigmoid)"
            ),
            BlobError::BadClassCount { count } => write!(
                f,
                "model blob: {count} activity classes at byte 42, must be 0 (no head) or 2..={MAX_CLASSES}"
            ),
            BlobError::BadClassId { row, class_id } => write!(
                f,
                "model blob: activity head row {row}: class id {class_id} is 0 or repeated"
            ),
            BlobError::Reserved { offset } => {
                write!(f, "model blob: reserved field at byte {offset} is not zero")
            }
            BlobError::BadScale { field } => write!(f, "model blob: invalid {field}"),
            BlobError::BadChannelScaling { index } => write!(
                f,
                "model blob: channel {index} has a non-finite offset or an invalid scale"
            ),
            BlobError::BadWeightScale { section, row } => write!(
                f,
                "model blob: {} row {row}: weight scale not finite and positive",
                section.name()
            ),
            BlobError::BiasOutOfRange {
                section,
                row,
                value,
            } => write!(
                f,
                "model blob: {} row {row}: bias {value} exceeds ±{MAX_ABS_BIAS}",
                section.name()
            ),
            BlobError::NegativeMultiplier {
                section,
                row,
                value,
            } => write!(
                f,
                "model blob: {} row {row}: negative requantisation multiplier {value}",
                section.name()
            ),
            BlobError::ShiftOutOfRange {
                section,
                row,
                value,
            } => write!(
                f,
                "model blob: {} row {row}: shift {value} outside 1..={MAX_SHIFT}",
                section.name()
            ),
        }
    }
}

impl core::error::Error for BlobError {}

/// The blob checksum; the same CRC-32 guards frames on the wire.
pub use crate::crc::crc32;

// ---------------------------------------------------------------------------------------
// Little-endian element access. Every slice handed to these was cut to its exact length
// by `parse`; out-of-range indices return 0 instead of panicking.

#[inline(always)]
fn le_u32_at(bytes: &[u8], offset: usize) -> u32 {
    match bytes.get(offset..offset.wrapping_add(4)) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
        _ => 0,
    }
}

#[inline(always)]
fn le_u16_at(bytes: &[u8], offset: usize) -> u16 {
    match bytes.get(offset..offset.wrapping_add(2)) {
        Some(&[a, b]) => u16::from_le_bytes([a, b]),
        _ => 0,
    }
}

#[inline(always)]
pub(crate) fn i32_elem(bytes: &[u8], index: usize) -> i32 {
    le_u32_at(bytes, index.wrapping_mul(4)) as i32
}

#[inline(always)]
pub(crate) fn f32_elem(bytes: &[u8], index: usize) -> f32 {
    f32::from_bits(le_u32_at(bytes, index.wrapping_mul(4)))
}

/// Cuts consecutive sections off a byte slice.
struct Cursor<'a> {
    rest: &'a [u8],
    needed: usize,
    actual: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BlobError> {
        if n > self.rest.len() {
            return Err(BlobError::Length {
                expected: self.needed,
                actual: self.actual,
            });
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }
}

/// One fully connected layer of the blob, borrowed from it. `rows` outputs, `cols` inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerView<'a> {
    pub rows: usize,
    pub cols: usize,
    w_scale: &'a [u8],
    bias: &'a [u8],
    threshold: &'a [u8],
    multiplier: &'a [u8],
    shift: &'a [u8],
    weights: &'a [u8],
}

impl<'a> LayerView<'a> {
    /// Per-output-channel weight scale of row `r` (real weight = `w_scale · w_q`).
    pub fn w_scale(&self, r: usize) -> f32 {
        f32_elem(self.w_scale, r)
    }
    /// Bias of row `r` in accumulator units.
    pub fn bias(&self, r: usize) -> i32 {
        i32_elem(self.bias, r)
    }
    /// Spike threshold of row `r` (γ head only; 0 for other layers).
    pub fn threshold(&self, r: usize) -> i32 {
        i32_elem(self.threshold, r)
    }
    /// Requantisation multiplier of row `r`.
    pub fn multiplier(&self, r: usize) -> i32 {
        i32_elem(self.multiplier, r)
    }
    /// Requantisation shift of row `r`.
    pub fn shift(&self, r: usize) -> u8 {
        self.shift.get(r).copied().unwrap_or(1)
    }
    /// The `cols` int8 weights of row `r`, as raw two's-complement bytes.
    pub fn row(&self, r: usize) -> &'a [u8] {
        let start = r.saturating_mul(self.cols);
        self.weights
            .get(start..start.saturating_add(self.cols))
            .unwrap_or(&[])
    }
    /// Weight `(r, c)` as `i8`.
    pub fn weight(&self, r: usize, c: usize) -> i8 {
        self.row(r).get(c).copied().unwrap_or(0) as i8
    }
    /// All `rows × cols` weight bytes, row-major.
    pub fn weight_bytes(&self) -> &'a [u8] {
        self.weights
    }
    /// The biases, thresholds (empty but for the γ head), multipliers (4 little-endian
    /// bytes per row each) and shifts (1 byte per row) as stored, for the encoder's loops
    /// over many rows.
    pub(crate) fn row_constant_bytes(&self) -> [&'a [u8]; 4] {
        [self.bias, self.threshold, self.multiplier, self.shift]
    }

    fn parse(
        cur: &mut Cursor<'a>,
        section: Section,
        rows: usize,
        cols: usize,
        with_threshold: bool,
    ) -> Result<Self, BlobError> {
        let w_scale = cur.take(4 * rows)?;
        let bias = cur.take(4 * rows)?;
        let threshold = if with_threshold {
            cur.take(4 * rows)?
        } else {
            &[]
        };
        let multiplier = cur.take(4 * rows)?;
        let shift = cur.take(rows)?;
        let weights = cur.take(rows * cols)?;
        let layer = LayerView {
            rows,
            cols,
            w_scale,
            bias,
            threshold,
            multiplier,
            shift,
            weights,
        };
        for row in 0..rows {
            let s = layer.w_scale(row);
            if !(s.is_finite() && s > 0.0) {
                return Err(BlobError::BadWeightScale { section, row });
            }
            let value = layer.bias(row);
            if value.unsigned_abs() > MAX_ABS_BIAS as u32 {
                return Err(BlobError::BiasOutOfRange {
                    section,
                    row,
                    value,
                });
            }
            let value = layer.multiplier(row);
            if value < 0 {
                return Err(BlobError::NegativeMultiplier {
                    section,
                    row,
                    value,
                });
            }
            let value = layer.shift(row);
            if !(1..=MAX_SHIFT).contains(&value) {
                return Err(BlobError::ShiftOutOfRange {
                    section,
                    row,
                    value,
                });
            }
        }
        Ok(layer)
    }
}

/// Size in bytes of a layer section.
const fn layer_len(rows: usize, cols: usize, with_threshold: bool) -> usize {
    let per_row = if with_threshold { 4 * 4 + 1 } else { 3 * 4 + 1 };
    rows * per_row + rows * cols
}

/// Total blob size for the given dimensions (`n_scaling` input-scaling entries) without
/// an activity head.
pub const fn blob_len(
    n_scaling: usize,
    input_dim: usize,
    hidden_dim: usize,
    latent_dim: usize,
) -> usize {
    blob_len_with_head(n_scaling, input_dim, hidden_dim, latent_dim, 0)
}

/// Total blob size with an activity head of `classes` rows (0: none).
pub const fn blob_len_with_head(
    n_scaling: usize,
    input_dim: usize,
    hidden_dim: usize,
    latent_dim: usize,
    classes: usize,
) -> usize {
    let head = if classes == 0 {
        0
    } else {
        classes + layer_len(classes, latent_dim, false)
    };
    HEADER_LEN
        + 8 * n_scaling
        + layer_len(hidden_dim, input_dim, false)
        + layer_len(latent_dim, hidden_dim, false)
        + layer_len(latent_dim, hidden_dim, true)
        + head
        + CRC_LEN
}

/// The optional activity head: a linear classifier on the sparse code, K rows of int8
/// weights over the `latent_dim` slab means.
///
/// Integer semantics (normative): with `mu_q` the code's slab means (0 for inactive
/// dims), `acc[c] = Σ_j w[c][j] · mu_q[j] + bias[c]` exactly in i32 (|acc| < 64 · 127 ·
/// 2¹⁵ + 2³⁰ < 2³¹), `logit_q[c] = requant(acc[c], m_c, s_c)` in units of [`LOGIT_SCALE`]
/// nats. The predicted class is the row with the largest `logit_q` (the first on ties),
/// reported as its class id; its score is the margin over the runner-up,
/// `min((logit_q[best] − logit_q[second]) >> SCORE_SHIFT, 127)`, i.e. in units of
/// [`SCORE_SCALE`] nats (0..=127: 127 means at least ~7.9 nats, a probability ratio of
/// e^7.9 ≈ 2700 between the two most likely classes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActivityHead<'a> {
    class_ids: &'a [u8],
    pub layer: LayerView<'a>,
}

/// Real value of one step of an activity logit `logit_q` (2⁻⁸ nats).
pub const LOGIT_SCALE: f32 = 1.0 / 256.0;
/// Right shift from a logit margin to the int8 score.
pub const SCORE_SHIFT: u32 = 4;
/// Real value of one step of the int8 activity score (2⁻⁴ nats).
pub const SCORE_SCALE: f32 = LOGIT_SCALE * (1 << SCORE_SHIFT) as f32;

impl<'a> ActivityHead<'a> {
    /// Number of classes K.
    pub fn classes(&self) -> usize {
        self.class_ids.len()
    }
    /// Class id of row `row` (0 outside the head).
    pub fn class_id(&self, row: usize) -> u8 {
        self.class_ids.get(row).copied().unwrap_or(0)
    }
}

/// A validated model blob, borrowing the bytes it was parsed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelBlob<'a> {
    bytes: &'a [u8],
    channels: ChannelSet,
    features: InputFeatures,
    spike_head: SpikeHead,
    window_len: usize,
    input_dim: usize,
    hidden_dim: usize,
    latent_dim: usize,
    hidden_scale_bits: u32,
    mu_scale_bits: u32,
    scaling: &'a [u8],
    hidden: LayerView<'a>,
    mu: LayerView<'a>,
    gamma: LayerView<'a>,
    activity: Option<ActivityHead<'a>>,
}

impl<'a> ModelBlob<'a> {
    /// Validates `bytes` and borrows the model from them. Checks, in order: length,
    /// magic, version, header length, total length, CRC, channel mask, dimensions,
    /// section lengths, reserved fields, scales, biases, multipliers and shifts.
    pub fn parse(bytes: &'a [u8]) -> Result<ModelBlob<'a>, BlobError> {
        let len = bytes.len();
        if len < HEADER_LEN + CRC_LEN {
            return Err(BlobError::TooShort { len });
        }
        let magic = [bytes[0], bytes[1], bytes[2], bytes[3]];
        if magic != MAGIC {
            return Err(BlobError::BadMagic { found: magic });
        }
        let version = le_u16_at(bytes, 4);
        if !(1..=FORMAT_VERSION).contains(&version) {
            return Err(BlobError::UnsupportedVersion { found: version });
        }
        let header_len = le_u16_at(bytes, 6);
        if header_len as usize != HEADER_LEN {
            return Err(BlobError::BadHeaderLen { found: header_len });
        }
        let total = le_u32_at(bytes, 8);
        if total as usize != len {
            return Err(BlobError::TotalLength {
                field: total,
                actual: len,
            });
        }
        let (content, trailer) = bytes.split_at(len - CRC_LEN);
        let stored = le_u32_at(trailer, 0);
        let computed = crc32(content);
        if stored != computed {
            return Err(BlobError::Crc { stored, computed });
        }

        let bits = le_u16_at(bytes, 12);
        let channels = ChannelSet::from_bits(bits).ok_or(BlobError::BadChannels { bits })?;
        let window_len = le_u16_at(bytes, 14);
        let input_dim = le_u16_at(bytes, 16);
        let hidden_dim = le_u16_at(bytes, 18);
        let latent_dim = le_u16_at(bytes, 20);
        let features_code = le_u16_at(bytes, 22);
        if version == 1 && features_code != 0 {
            return Err(BlobError::Reserved { offset: 22 });
        }
        let features = u8::try_from(features_code)
            .ok()
            .and_then(InputFeatures::from_code)
            .ok_or(BlobError::BadFeatures {
                code: features_code,
            })?;
        let check = |field, value: u16, max: usize| {
            if value == 0 || value as usize > max {
                Err(BlobError::DimOutOfRange {
                    field,
                    value,
                    max: max as u16,
                })
            } else {
                Ok(value as usize)
            }
        };
        let window_len = check("window_len", window_len, WINDOW_LEN)?;
        let input_dim_usize = check("input_dim", input_dim, MAX_INPUT)?;
        let hidden_dim = check("hidden_dim", hidden_dim, MAX_HIDDEN)?;
        let latent_dim = check("latent_dim", latent_dim, MAX_LATENT)?;
        let per_channel = match features {
            InputFeatures::Waveform => window_len,
            // The spectrum is defined on whole windows.
            InputFeatures::BandSpectrum if window_len == WINDOW_LEN => {
                features.values_per_channel()
            }
            InputFeatures::BandSpectrum => 0,
        };
        if input_dim_usize != channels.len() * per_channel {
            return Err(BlobError::InputDimMismatch {
                input_dim,
                channels: channels.len() as u16,
                window_len: window_len as u16,
            });
        }
        let input_dim = input_dim_usize;
        let n_scaling = features.scaling_entries(channels, input_dim);
        let classes = le_u16_at(bytes, 42);
        if version < 4 && classes != 0 {
            return Err(BlobError::Reserved { offset: 42 });
        }
        if classes == 1 || classes as usize > MAX_CLASSES {
            return Err(BlobError::BadClassCount { count: classes });
        }
        let classes = classes as usize;
        let expected = blob_len_with_head(n_scaling, input_dim, hidden_dim, latent_dim, classes);
        if expected != len {
            return Err(BlobError::Length {
                expected,
                actual: len,
            });
        }
        if let Some(offset) = (44..HEADER_LEN).find(|&i| bytes.get(i) != Some(&0)) {
            return Err(BlobError::Reserved { offset });
        }
        let spike_code = le_u16_at(bytes, 40);
        if version < 3 && spike_code != 0 {
            return Err(BlobError::Reserved { offset: 40 });
        }
        let spike_head =
            SpikeHead::from_code(spike_code).ok_or(BlobError::BadSpikeHead { code: spike_code })?;
        if le_u32_at(bytes, 24) != INPUT_SCALE.to_bits() {
            return Err(BlobError::BadScale {
                field: "input_scale",
            });
        }
        let hidden_scale = f32::from_bits(le_u32_at(bytes, 28));
        if !(hidden_scale.is_finite() && hidden_scale > 0.0) {
            return Err(BlobError::BadScale {
                field: "hidden_scale",
            });
        }
        let mu_scale = f32::from_bits(le_u32_at(bytes, 32));
        if !(mu_scale.is_finite() && mu_scale > 0.0) {
            return Err(BlobError::BadScale { field: "mu_scale" });
        }
        if le_u32_at(bytes, 36) != V_SCALE.to_bits() {
            return Err(BlobError::BadScale { field: "v_scale" });
        }

        let mut cur = Cursor {
            rest: content.get(HEADER_LEN..).unwrap_or(&[]),
            needed: expected,
            actual: len,
        };
        let scaling = cur.take(8 * n_scaling)?;
        for index in 0..n_scaling {
            let offset = f32_elem(scaling, 2 * index);
            let scale = f32_elem(scaling, 2 * index + 1);
            if !(offset.is_finite() && scale.is_finite() && scale >= 0.0) {
                return Err(BlobError::BadChannelScaling { index });
            }
        }
        let hidden = LayerView::parse(&mut cur, Section::Hidden, hidden_dim, input_dim, false)?;
        let mu = LayerView::parse(&mut cur, Section::Mu, latent_dim, hidden_dim, false)?;
        let gamma = LayerView::parse(&mut cur, Section::Gamma, latent_dim, hidden_dim, true)?;
        let activity = if classes == 0 {
            None
        } else {
            let class_ids = cur.take(classes)?;
            for (row, &class_id) in class_ids.iter().enumerate() {
                if class_id == 0 || class_ids[..row].contains(&class_id) {
                    return Err(BlobError::BadClassId { row, class_id });
                }
            }
            let layer = LayerView::parse(&mut cur, Section::Activity, classes, latent_dim, false)?;
            Some(ActivityHead { class_ids, layer })
        };
        if !cur.rest.is_empty() {
            // Unreachable given `expected == len`, kept so a layout change cannot slip.
            return Err(BlobError::Length {
                expected,
                actual: len,
            });
        }
        Ok(ModelBlob {
            bytes,
            channels,
            features,
            spike_head,
            window_len,
            input_dim,
            hidden_dim,
            latent_dim,
            hidden_scale_bits: hidden_scale.to_bits(),
            mu_scale_bits: mu_scale.to_bits(),
            scaling,
            hidden,
            mu,
            gamma,
            activity,
        })
    }

    /// The bytes the blob was parsed from (CRC trailer included).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
    /// The CRC-32 stored in the trailer (a short model identifier).
    pub fn crc(&self) -> u32 {
        le_u32_at(self.bytes, self.bytes.len().saturating_sub(CRC_LEN))
    }
    pub fn channels(&self) -> ChannelSet {
        self.channels
    }
    /// How a window becomes the model input.
    pub fn features(&self) -> InputFeatures {
        self.features
    }
    /// How the γ head's pre-activation becomes γ.
    pub fn spike_head(&self) -> SpikeHead {
        self.spike_head
    }
    /// Samples per channel of the windows the model encodes.
    pub fn window_len(&self) -> usize {
        self.window_len
    }
    /// Raw window length: channels × `window_len`.
    pub fn window_dim(&self) -> usize {
        self.channels.len() * self.window_len
    }
    /// Number of input-scaling entries.
    pub fn scaling_len(&self) -> usize {
        self.scaling.len() / 8
    }
    /// The input-scaling entries as stored: [`ModelBlob::scaling_len`] little-endian
    /// `(offset, scale)` `f32` pairs, for the encoder's input stage (which reads them in
    /// order, without a bounds check per [`ModelBlob::scaling`] call).
    pub(crate) fn scaling_bytes(&self) -> &'a [u8] {
        self.scaling
    }
    /// Consecutive model-input values that share one scaling entry.
    pub fn scaling_block_len(&self) -> usize {
        self.features.scaling_block_len(self.window_len)
    }
    pub fn input_dim(&self) -> usize {
        self.input_dim
    }
    pub fn hidden_dim(&self) -> usize {
        self.hidden_dim
    }
    pub fn latent_dim(&self) -> usize {
        self.latent_dim
    }
    /// Real value of one step of the `u8` hidden activation.
    pub fn hidden_scale(&self) -> f32 {
        f32::from_bits(self.hidden_scale_bits)
    }
    /// Real value of one step of the `i16` slab mean.
    pub fn mu_scale(&self) -> f32 {
        f32::from_bits(self.mu_scale_bits)
    }
    /// Input-scaling entry `index`: window row `index` for waveforms, model-input value
    /// `index` for spectra.
    pub fn scaling(&self, index: usize) -> ChannelScaling {
        ChannelScaling {
            offset: f32_elem(self.scaling, 2 * index),
            scale: f32_elem(self.scaling, 2 * index + 1),
        }
    }
    pub fn hidden(&self) -> &LayerView<'a> {
        &self.hidden
    }
    pub fn mu_head(&self) -> &LayerView<'a> {
        &self.mu
    }
    pub fn gamma_head(&self) -> &LayerView<'a> {
        &self.gamma
    }
    /// The activity head, if the blob has one (format 4).
    pub fn activity_head(&self) -> Option<&ActivityHead<'a>> {
        self.activity.as_ref()
    }
    /// Bytes of int8 weights (all layers, the activity head included).
    pub fn weight_bytes(&self) -> usize {
        self.hidden.weights.len()
            + self.mu.weights.len()
            + self.gamma.weights.len()
            + self.activity.map_or(0, |a| a.layer.weights.len())
    }
}
