//! The int8 model blob (`.vscq`): read in place from a `&[u8]` (e.g. in flash), no heap,
//! no copy of the weights, every malformed input a typed [`BlobError`].
//!
//! # Layout (format version 5), all integers and floats little-endian
//!
//! Fields are read byte by byte (`from_le_bytes`), so the blob may sit at any address;
//! the dense weights are laid out for word loads from a blob at a 4-aligned address
//! (the Cortex-M4 kernel reads them with `LDM`; elsewhere, or from an unaligned blob, the
//! same integers come from a plain-Rust kernel).
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
//! | 44 | 1 | format 5: dense layers stored in row pairs ([`WeightLayout::RowPairs`]), bit 0 hidden layer, bit 1 μ head, bit 2 γ head (the others row-major); versions 1–4 have 0 here |
//! | 45 | 3 | reserved, 0 |
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
//! `multiplier: [i32; R]` (≥ 0), `shift: [u8; R]` (1..=[`MAX_SHIFT`]), then the weights
//! (int8, −127..=127 as the quantiser writes them; the row-major layout also allows −128):
//! - the hidden layer, μ and γ heads that byte 44 marks ([`WeightLayout::RowPairs`]; the
//!   quantiser marks every layer whose rows all meet the bound below): 0 to 3 zero
//!   bytes, so that the weights start at a multiple of 4 from the blob's first byte, then
//!   `⌈R/2⌉` row pairs of `Kp = K` rounded up to a multiple of [`PAIR_COLS_MULTIPLE`]
//!   little-endian `i16`s each: pair p, column c holds `h = 256 · w[2p+1][c] + w[2p][c]`
//!   (both rows' weights in one halfword: the low byte is `w[2p][c]` as a two's-complement
//!   byte, `w[2p+1][c] = (h − w[2p][c]) / 256`). Columns `K..Kp` and, for odd R, the
//!   second row of the last pair are 0. Every row has `255 · Σ_c |w[r][c]| < 2²³`
//!   ([`MAX_ROW_L1`]), so the pair kernel's `Σ h·x − Σ w[2p]·x = 256 · Σ w[2p+1]·x` is
//!   exact in `i32` (see [`crate::kernels`]).
//! - the activity head, the other layers, and every layer of formats 1–4
//!   ([`WeightLayout::RowMajor`]):
//!   `weights: [i8; R·K]` row-major (row r = output r).
//!
//! The integer semantics of these numbers are documented in [`crate::encoder`].

use core::fmt;

use crate::preprocess::{ChannelScaling, ChannelSet, InputFeatures, WINDOW_LEN};
use crate::spike::SpikeHead;

/// First four bytes of every blob.
pub const MAGIC: [u8; 4] = *b"VSCQ";
/// The format version this code writes. It also reads version 1 (waveform models only,
/// byte 22 reserved), version 2 (byte 40 reserved: the paper's spike head), version 3
/// (byte 42 reserved: no activity head) and version 4 (row-major dense weights), which
/// differ in nothing else. Version 5 can store the hidden layer and both heads in row
/// pairs ([`WeightLayout::RowPairs`], byte 44).
pub const FORMAT_VERSION: u16 = 5;
/// The first format version with [`WeightLayout::RowPairs`] dense layers.
pub const ROW_PAIRS_VERSION: u16 = 5;
/// Header byte of the dense layers' layouts (format 5).
pub const LAYOUT_OFFSET: usize = 44;
/// Row pairs hold a multiple of this many columns (one step of the Cortex-M4 loop).
pub const PAIR_COLS_MULTIPLE: usize = 8;
/// Largest `Σ_c |w[r][c]|` of a row stored in row pairs: `255 · MAX_ROW_L1 < 2²³`, so
/// `|Σ_c w[r][c] · x[c]| < 2²³` for every `u8` input and `256 ·` that fits `i32`.
pub const MAX_ROW_L1: u32 = ((1 << 23) - 1) / 255;
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
    /// Row `row` of `section` (row-pair layout) has `Σ|w| = l1` above [`MAX_ROW_L1`]: the
    /// pair kernel could not compute its dot product exactly.
    RowL1 {
        section: Section,
        row: usize,
        l1: u32,
    },
    /// The row-pair halfword of row `row`, column `col` of `section` holds a weight
    /// outside −128..=127.
    BadPairWeight {
        section: Section,
        row: usize,
        col: usize,
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
            BlobError::RowL1 { section, row, l1 } => write!(
                f,
                "model blob: {} row {row}: sum of |weights| {l1} exceeds {MAX_ROW_L1} (255 · Σ|w| must stay below 2^23 for the row-pair kernel; re-quantise with smaller weights)",
                section.name()
            ),
            BlobError::BadPairWeight { section, row, col } => write!(
                f,
                "model blob: {} row {row} column {col}: row-pair weight outside -128..=127",
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
    /// Offset of `rest` from the blob's first byte.
    pos: usize,
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
        self.pos += n;
        Ok(head)
    }

    /// The zero bytes that bring the position to a multiple of 4.
    fn align4(&mut self) -> Result<(), BlobError> {
        let at = self.pos;
        let pad = self.take(align4_pad(at))?;
        match pad.iter().position(|&b| b != 0) {
            Some(i) => Err(BlobError::Reserved { offset: at + i }),
            None => Ok(()),
        }
    }
}

/// Bytes from offset `at` to the next multiple of 4.
const fn align4_pad(at: usize) -> usize {
    (4 - at % 4) % 4
}

/// How a layer's weights are stored (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightLayout {
    /// `[i8; rows · cols]`, row by row.
    RowMajor,
    /// Row pairs of `i16` halfwords `256 · w[2p+1][c] + w[2p][c]`, columns padded to a
    /// multiple of [`PAIR_COLS_MULTIPLE`].
    RowPairs,
}

/// One fully connected layer of the blob, borrowed from it. `rows` outputs, `cols` inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerView<'a> {
    pub rows: usize,
    pub cols: usize,
    layout: WeightLayout,
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
    /// How the weights are stored.
    pub fn layout(&self) -> WeightLayout {
        self.layout
    }
    /// The `cols` int8 weights of row `r` as raw two's-complement bytes, for the
    /// [`WeightLayout::RowMajor`] layout (empty for row pairs: see [`LayerView::pair`]).
    pub fn row(&self, r: usize) -> &'a [u8] {
        if self.layout != WeightLayout::RowMajor {
            return &[];
        }
        let start = r.saturating_mul(self.cols);
        self.weights
            .get(start..start.saturating_add(self.cols))
            .unwrap_or(&[])
    }
    /// Columns of a stored row pair: `cols` rounded up to [`PAIR_COLS_MULTIPLE`].
    pub fn pair_cols(&self) -> usize {
        self.cols.next_multiple_of(PAIR_COLS_MULTIPLE)
    }
    /// Row pairs stored (`⌈rows / 2⌉`; 0 for the row-major layout).
    pub fn pairs(&self) -> usize {
        match self.layout {
            WeightLayout::RowPairs => self.rows.div_ceil(2),
            WeightLayout::RowMajor => 0,
        }
    }
    /// The `2 · pair_cols` bytes of row pair `p` (rows `2p` and `2p + 1`) in the
    /// [`WeightLayout::RowPairs`] layout (empty otherwise or past the last pair).
    pub fn pair(&self, p: usize) -> &'a [u8] {
        self.pair_run(p, 1)
    }
    /// The bytes of `n` consecutive row pairs from pair `p` (empty where they do not
    /// all exist).
    pub fn pair_run(&self, p: usize, n: usize) -> &'a [u8] {
        if self.layout != WeightLayout::RowPairs || p.saturating_add(n) > self.pairs() {
            return &[];
        }
        let bytes = 2 * self.pair_cols();
        self.weights.get(p * bytes..(p + n) * bytes).unwrap_or(&[])
    }
    /// Weight `(r, c)` as `i8` (0 outside the layer), in either layout.
    pub fn weight(&self, r: usize, c: usize) -> i8 {
        if r >= self.rows || c >= self.cols {
            return 0;
        }
        match self.layout {
            WeightLayout::RowMajor => self.row(r).get(c).copied().unwrap_or(0) as i8,
            WeightLayout::RowPairs => {
                let h = match self.pair(r / 2).get(2 * c..2 * c + 2) {
                    Some(&[lo, hi]) => i16::from_le_bytes([lo, hi]),
                    _ => 0,
                };
                pair_weights(h)[r % 2]
            }
        }
    }
    /// The weight bytes as stored (row-major, or row pairs with their padding).
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
        layout: WeightLayout,
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
        let weights = match layout {
            WeightLayout::RowMajor => cur.take(rows * cols)?,
            WeightLayout::RowPairs => {
                cur.align4()?;
                let at = cur.pos;
                let weights = cur.take(weights_len(layout, rows, cols))?;
                check_row_pairs(weights, section, rows, cols, at)?;
                weights
            }
        };
        let layer = LayerView {
            rows,
            cols,
            layout,
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

/// The two weights `(w[2p][c], w[2p+1][c])` of a row-pair halfword `h`.
#[inline(always)]
pub const fn pair_weights(h: i16) -> [i8; 2] {
    let a = h as u8 as i8;
    [a, ((h as i32 - a as i32) >> 8) as i8]
}

/// The halfword of the weights `(a, b)` of rows `2p`, `2p + 1` at one column; the
/// inverse of [`pair_weights`] for `b > −128` (and for `b = −128` with `a ≥ 0`).
#[inline(always)]
pub const fn pair_halfword(a: i8, b: i8) -> i16 {
    (256 * b as i32 + a as i32) as i16
}

/// Every row's `Σ|w|` at most [`MAX_ROW_L1`], the padding columns and the missing row of
/// an odd layer 0 (`at`: the weights' offset in the blob, for the error).
fn check_row_pairs(
    weights: &[u8],
    section: Section,
    rows: usize,
    cols: usize,
    at: usize,
) -> Result<(), BlobError> {
    let pair_bytes = 2 * cols.next_multiple_of(PAIR_COLS_MULTIPLE);
    for (p, pair) in weights.chunks_exact(pair_bytes.max(2)).enumerate() {
        let mut l1 = [0u32; 2];
        for (c, h) in pair.as_chunks::<2>().0.iter().enumerate() {
            let h = i16::from_le_bytes(*h);
            let w = pair_weights(h);
            let second_row = 2 * p + 1 < rows;
            // A halfword whose second weight is not an i8 (`(h − a) / 256` = 128 or −129):
            // the kernels would sum it as such, the decoded weight would differ.
            if (h as i32 - w[0] as i32) >> 8 != w[1] as i32 {
                return Err(BlobError::BadPairWeight {
                    section,
                    row: 2 * p + 1,
                    col: c,
                });
            }
            if h != 0 && (c >= cols || !second_row && w[1] != 0) {
                return Err(BlobError::Reserved {
                    offset: at + p * pair_bytes + 2 * c,
                });
            }
            l1[0] += w[0].unsigned_abs() as u32;
            l1[1] += w[1].unsigned_abs() as u32;
        }
        for (k, &l1) in l1.iter().enumerate() {
            if l1 > MAX_ROW_L1 {
                return Err(BlobError::RowL1 {
                    section,
                    row: 2 * p + k,
                    l1,
                });
            }
        }
    }
    Ok(())
}

/// Bytes of a layer's weights in `layout` (without the alignment padding before them).
const fn weights_len(layout: WeightLayout, rows: usize, cols: usize) -> usize {
    match layout {
        WeightLayout::RowMajor => rows * cols,
        WeightLayout::RowPairs => rows.div_ceil(2) * 2 * cols.next_multiple_of(PAIR_COLS_MULTIPLE),
    }
}

/// Offset after a layer section that starts at offset `at`.
const fn layer_end(
    at: usize,
    rows: usize,
    cols: usize,
    with_threshold: bool,
    layout: WeightLayout,
) -> usize {
    let per_row = if with_threshold { 4 * 4 + 1 } else { 3 * 4 + 1 };
    let at = at + rows * per_row;
    let at = match layout {
        WeightLayout::RowMajor => at,
        WeightLayout::RowPairs => at + align4_pad(at),
    };
    at + weights_len(layout, rows, cols)
}

/// Total blob size for the given dimensions (`n_scaling` input-scaling entries) without
/// an activity head, in the current format with every dense layer in row pairs.
pub const fn blob_len(
    n_scaling: usize,
    input_dim: usize,
    hidden_dim: usize,
    latent_dim: usize,
) -> usize {
    blob_len_with_head(n_scaling, input_dim, hidden_dim, latent_dim, 0)
}

/// Total blob size with an activity head of `classes` rows (0: none), in the current
/// format with every dense layer in row pairs.
pub const fn blob_len_with_head(
    n_scaling: usize,
    input_dim: usize,
    hidden_dim: usize,
    latent_dim: usize,
    classes: usize,
) -> usize {
    blob_len_of_layouts(
        [WeightLayout::RowPairs; 3],
        n_scaling,
        input_dim,
        hidden_dim,
        latent_dim,
        classes,
    )
}

/// The layouts of the hidden layer, μ and γ heads for the layout byte `bits` (byte 44).
pub fn dense_layouts(bits: u8) -> [WeightLayout; 3] {
    [1u8, 2, 4].map(|bit| {
        if bits & bit != 0 {
            WeightLayout::RowPairs
        } else {
            WeightLayout::RowMajor
        }
    })
}

/// The layout byte (byte 44) of the layouts of the hidden layer, μ and γ heads.
pub fn layout_bits(layouts: [WeightLayout; 3]) -> u8 {
    layouts
        .iter()
        .zip([1u8, 2, 4])
        .filter(|(l, _)| **l == WeightLayout::RowPairs)
        .fold(0, |bits, (_, bit)| bits | bit)
}

/// Total blob size with the dense layers in `dense` (hidden, μ, γ; formats 1–4: all
/// row-major, formats 1–3: no activity head, `classes` 0).
pub const fn blob_len_of_layouts(
    dense: [WeightLayout; 3],
    n_scaling: usize,
    input_dim: usize,
    hidden_dim: usize,
    latent_dim: usize,
    classes: usize,
) -> usize {
    let at = HEADER_LEN + 8 * n_scaling;
    let at = layer_end(at, hidden_dim, input_dim, false, dense[0]);
    let at = layer_end(at, latent_dim, hidden_dim, false, dense[1]);
    let at = layer_end(at, latent_dim, hidden_dim, true, dense[2]);
    let at = if classes == 0 {
        at
    } else {
        layer_end(
            at + classes,
            classes,
            latent_dim,
            false,
            WeightLayout::RowMajor,
        )
    };
    at + CRC_LEN
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
        let layout_byte = bytes.get(LAYOUT_OFFSET).copied().unwrap_or(0);
        if version < ROW_PAIRS_VERSION && layout_byte != 0 || layout_byte > 7 {
            return Err(BlobError::Reserved {
                offset: LAYOUT_OFFSET,
            });
        }
        let dense = dense_layouts(layout_byte);
        let expected =
            blob_len_of_layouts(dense, n_scaling, input_dim, hidden_dim, latent_dim, classes);
        if expected != len {
            return Err(BlobError::Length {
                expected,
                actual: len,
            });
        }
        if let Some(offset) = (LAYOUT_OFFSET + 1..HEADER_LEN).find(|&i| bytes.get(i) != Some(&0)) {
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
            pos: HEADER_LEN,
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
        let [hidden_layout, mu_layout, gamma_layout] = dense;
        let hidden = LayerView::parse(
            &mut cur,
            Section::Hidden,
            hidden_dim,
            input_dim,
            false,
            hidden_layout,
        )?;
        let mu = LayerView::parse(
            &mut cur,
            Section::Mu,
            latent_dim,
            hidden_dim,
            false,
            mu_layout,
        )?;
        let gamma = LayerView::parse(
            &mut cur,
            Section::Gamma,
            latent_dim,
            hidden_dim,
            true,
            gamma_layout,
        )?;
        let activity = if classes == 0 {
            None
        } else {
            let class_ids = cur.take(classes)?;
            for (row, &class_id) in class_ids.iter().enumerate() {
                if class_id == 0 || class_ids[..row].contains(&class_id) {
                    return Err(BlobError::BadClassId { row, class_id });
                }
            }
            let layer = LayerView::parse(
                &mut cur,
                Section::Activity,
                classes,
                latent_dim,
                false,
                WeightLayout::RowMajor,
            )?;
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
    /// The blob's format version.
    pub fn version(&self) -> u16 {
        le_u16_at(self.bytes, 4)
    }
    /// Bytes of int8 weights as stored (all layers, the activity head included; row
    /// pairs with their padding columns and rows).
    pub fn weight_bytes(&self) -> usize {
        self.hidden.weights.len()
            + self.mu.weights.len()
            + self.gamma.weights.len()
            + self.activity.map_or(0, |a| a.layer.weights.len())
    }
}
