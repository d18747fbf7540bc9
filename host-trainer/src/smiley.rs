//! The Smiley sparse data set (VSC paper, supplement E; `docs/VSC.md` §6), drawn as the
//! authors' MATLAB generator draws it (`Data_Sets/Smiley/Generate_Smiley_Dataset/*.m` in
//! their repository; facts and numbers only, the code here is this project's own).
//!
//! 32×32 binary images: a filled face, and four attribute groups — bow tie, hat, eyes,
//! mouth — each present independently with probability 0.5. Every group has a few source
//! variables `v`, each drawn from N(0, 0.5²) (`0.5*randn` in the MATLAB script) whether or
//! not the group is drawn; the geometry is `base + scale · v` pixels, so the pixel spread of a
//! feature is `0.5 · scale` ([`FeatureSpec::sd_px`]).
//!
//! # Coordinates
//! Geometry is written in the MATLAB script's own pixel coordinates: `x` is the column and
//! `y` the row, both 1-based, pixel centres at whole numbers, `y` growing downwards (the
//! face as `imshow` shows it: hat on top, bow tie at the bottom). The image buffers are
//! row-major, `buffer[(y − 1) · 32 + (x − 1)]`. MATLAB's `reshape(I, 1, 1024)` stores the
//! same image column by column, i.e. transposed with respect to ours; [`to_column_major`]
//! (and `vsc data smiley --column-major`) gives that order. A fully connected model sees
//! either as the same data set up to a fixed permutation of its inputs.
//!
//! # Differences from the authors' generator, and why
//! | point | MATLAB (authors) | here | reason |
//! |---|---|---|---|
//! | bow-tie shape | `bowtie.png` resized to 11×17, binarised, resized to `(5+2v) × (12+3v)` px, binarised | two triangles meeting at a knot, evaluated on the same box | the PNG is binary and not readable here; box size, position and spreads are the authors' |
//! | bow-tie box size | `imresize` to a fractional size | `ceil` of height and width | our reading of how `imresize` treats a fractional output size |
//! | parts that would leave the canvas | MATLAB errors (index ≤ 0) or grows the array | clipped to the canvas | never happens within ±4 sd of the draws |
//! | random numbers | MATLAB `rand`/`randn` | ChaCha8 from `--seed` | reproducible in Rust; the distributions are the same |
//! | pixel order | column-major (see above) | row-major (`--column-major` for theirs) | the upright image in every NPY viewer |
//! | file format | `.mat` with `X` (n×1024), `S`, `V` (n×18) | `{train,test}_{images,presence,values}.npy` | no MATLAB here; `presence` = `S`, `values` = `V` |
//! | training input | the authors' notebook L2-normalises each image for their Gaussian model | binary {0, 1} images | the Bernoulli likelihood of `VSC.md` §8 |
//!
//! The supplement's text and the MATLAB script agree on the group sizes (3 + 5 + 6 + 4),
//! the presence probability and the bow tie's spreads (0.5, 0.25, 1, 1.5 px for vertical
//! and horizontal position, height and length). Where the supplement says "sd 0.5 px" for
//! the eyes and mouth, the script's scales give 1.0 px for the eye separation (each eye
//! moves by 0.5 px sd) and 0.25 px for the mouth's position; this generator follows the
//! script. The supplement gives no spreads for the hat; the script's are used.
//!
//! The ground truth is the script's: `S` is 1 for every source of a drawn group, `V` holds
//! the raw draws `v` of all 18 sources (also those of absent groups); the source vector the
//! authors correlate latents with is `S ⊙ V`. Columns are in the script's order: bow tie
//! (0–3), hat (4–9), eyes (10–12), mouth (13–17).

use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::matrix::{Matrix, MatrixError, write_npy};

/// Image side length in pixels.
pub const SMILEY_SIDE_PX: usize = 32;
/// Pixels per image (`SMILEY_SIDE_PX²`).
pub const SMILEY_PIXELS: usize = SMILEY_SIDE_PX * SMILEY_SIDE_PX;
/// Number of ground-truth source features.
pub const N_SOURCES: usize = 18;
/// Number of attribute groups.
pub const N_GROUPS: usize = 4;
/// Face disc centre (x and y, 1-based pixel coordinates) and radius in pixels.
pub const FACE_CENTRE_PX: f64 = 16.5;
pub const FACE_RADIUS_PX: f64 = 10.0;
/// Standard deviation of every source draw `v` (`0.5*randn`).
pub const SOURCE_SD: f64 = 0.5;
/// Training / test sizes of the paper.
pub const PAPER_N_TRAIN: usize = 60_000;
pub const PAPER_N_TEST: usize = 20_000;

/// Attribute groups, in the MATLAB script's source order (`s(1)` … `s(4)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SmileyGroup {
    BowTie = 0,
    Hat = 1,
    Eyes = 2,
    Mouth = 3,
}

impl SmileyGroup {
    pub const ALL: [SmileyGroup; N_GROUPS] = [Self::BowTie, Self::Hat, Self::Eyes, Self::Mouth];

    pub fn name(self) -> &'static str {
        match self {
            Self::Eyes => "eyes",
            Self::Mouth => "mouth",
            Self::Hat => "hat",
            Self::BowTie => "bow tie",
        }
    }

    /// Source indices `[start, end)` of this group's features.
    pub fn sources(self) -> std::ops::Range<usize> {
        match self {
            Self::BowTie => 0..4,
            Self::Hat => 4..10,
            Self::Eyes => 10..13,
            Self::Mouth => 13..18,
        }
    }
}

/// One source feature: the pixel quantity it sets is `base_px + px_per_unit · v`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FeatureSpec {
    pub name: &'static str,
    pub group: SmileyGroup,
    /// Value at v = 0, in the 1-based pixel coordinates of the module docs.
    pub base_px: f64,
    /// Pixels per unit of the draw v.
    pub px_per_unit: f64,
}

impl FeatureSpec {
    /// Standard deviation of the pixel quantity.
    pub fn sd_px(&self) -> f64 {
        SOURCE_SD * self.px_per_unit
    }

    /// The pixel quantity for draw `v`.
    pub fn px(&self, v: f64) -> f64 {
        self.base_px + self.px_per_unit * v
    }
}

const fn spec(
    name: &'static str,
    group: SmileyGroup,
    base_px: f64,
    px_per_unit: f64,
) -> FeatureSpec {
    FeatureSpec {
        name,
        group,
        base_px,
        px_per_unit,
    }
}

/// The 18 sources in the MATLAB script's column order, with its bases and scales.
pub const FEATURES: [FeatureSpec; N_SOURCES] = {
    use SmileyGroup::*;
    [
        spec("bowtie_x", BowTie, 16.5, 0.5),
        spec("bowtie_y", BowTie, 29.0, 1.0),
        spec("bowtie_length", BowTie, 12.0, 3.0),
        spec("bowtie_height", BowTie, 5.0, 2.0),
        spec("hat_x", Hat, 16.5, 1.0),
        // Centre row of the brim.
        spec("hat_y", Hat, 6.0, 1.0),
        spec("hat_brim_width", Hat, 15.0, 3.0),
        spec("hat_brim_height", Hat, 2.0, 2.0),
        spec("hat_crown_width", Hat, 10.0, 2.0),
        spec("hat_crown_height", Hat, 2.0, 1.0),
        // Horizontal distance of each eye's centre from the face's centre line.
        spec("eyes_offset", Eyes, 4.0, 1.0),
        spec("eyes_y", Eyes, 14.0, 1.0),
        spec("eyes_radius", Eyes, 2.0, 1.0),
        spec("mouth_length", Mouth, 4.0, 1.0),
        spec("mouth_height", Mouth, 2.0, 1.0),
        spec("mouth_x", Mouth, 16.0, 0.5),
        spec("mouth_y", Mouth, 22.0, 0.5),
        // Rows the mouth's corner pixels move by: v for the inner, 1.4 v for the outer pair
        // (up for v < 0: a smile).
        spec("mouth_corners_dy", Mouth, 0.0, 1.0),
    ]
};

/// Name of source `i` (panics on an out-of-range index: a programming error).
pub fn source_name(i: usize) -> &'static str {
    FEATURES[i].name
}

/// One image's source draws and which groups are drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SmileyParams {
    /// The draws `v` (~ N(0, 0.5²)), in [`FEATURES`] order.
    pub draws: [f64; N_SOURCES],
    pub present: [bool; N_GROUPS],
}

impl SmileyParams {
    /// Every group present, every draw 0 (every feature at its base value).
    pub fn mean_all_present() -> Self {
        Self {
            draws: [0.0; N_SOURCES],
            present: [true; N_GROUPS],
        }
    }

    /// Pixel quantity of source `s` (see [`FeatureSpec::px`]).
    pub fn px(&self, s: usize) -> f64 {
        FEATURES[s].px(self.draws[s])
    }

    /// Draw one image's parameters: each group present with `presence_prob`; every source
    /// is drawn, present or not, as in the MATLAB script.
    pub fn sample(rng: &mut impl Rng, presence_prob: f64) -> Self {
        let mut p = Self::mean_all_present();
        for g in SmileyGroup::ALL {
            p.present[g as usize] = rng.random_bool(presence_prob);
        }
        for v in &mut p.draws {
            let e: f64 = StandardNormal.sample(rng);
            *v = SOURCE_SD * e;
        }
        p
    }
}

/// Image under construction, addressed in 1-based (x = column, y = row) coordinates;
/// writes outside the canvas are dropped.
struct Canvas(Vec<f32>);

impl Canvas {
    fn set(&mut self, x: i64, y: i64, value: f32) {
        let side = SMILEY_SIDE_PX as i64;
        if (1..=side).contains(&x) && (1..=side).contains(&y) {
            self.0[((y - 1) * side + (x - 1)) as usize] = value;
        }
    }

    /// Inclusive ranges, as MATLAB's `a:b` (empty when a > b).
    fn fill(&mut self, xs: (i64, i64), ys: (i64, i64), value: f32) {
        for y in ys.0..=ys.1 {
            for x in xs.0..=xs.1 {
                self.set(x, y, value);
            }
        }
    }

    fn fill_disc(&mut self, cx: f64, cy: f64, r: f64, value: f32) {
        for y in 1..=SMILEY_SIDE_PX as i64 {
            for x in 1..=SMILEY_SIDE_PX as i64 {
                if (x as f64 - cx).hypot(y as f64 - cy) <= r {
                    self.set(x, y, value);
                }
            }
        }
    }
}

/// MATLAB's `round`: halves away from zero (Rust's `f64::round` does the same).
fn mround(v: f64) -> i64 {
    v.round() as i64
}

/// Is pixel (`col`, `row`) (0-based) of a `rows × cols` bow-tie box ink? Two triangles whose
/// height grows from 45 % at the knot to the full box at the ends.
fn bow_tie_ink(col: usize, row: usize, cols: usize, rows: usize) -> bool {
    let u = 2.0 * (col as f64 + 0.5) / cols as f64 - 1.0;
    let w = 2.0 * (row as f64 + 0.5) / rows as f64 - 1.0;
    w.abs() <= 0.45 + 0.55 * u.abs()
}

/// Draw one 32×32 binary image (row-major, rows top to bottom) from its parameters, in the
/// MATLAB script's order: face, bow tie (added), eyes and mouth (cut out), hat (drawn over).
pub fn render(p: &SmileyParams) -> Vec<f32> {
    let mut c = Canvas(vec![0.0; SMILEY_PIXELS]);
    c.fill_disc(FACE_CENTRE_PX, FACE_CENTRE_PX, FACE_RADIUS_PX, 1.0);
    if p.present[SmileyGroup::BowTie as usize] {
        let (cx, cy, len, height) = (p.px(0), p.px(1), p.px(2), p.px(3));
        if len > 0.0 && height > 0.0 {
            let (cols, rows) = (len.ceil() as usize, height.ceil() as usize);
            let (x0, y0) = (mround(cx - len / 2.0), mround(cy - height / 2.0));
            for row in 0..rows {
                for col in 0..cols {
                    if bow_tie_ink(col, row, cols, rows) {
                        c.set(x0 + col as i64, y0 + row as i64, 1.0);
                    }
                }
            }
        }
    }
    if p.present[SmileyGroup::Eyes as usize] {
        let (offset, cy, r) = (p.px(10), p.px(11), p.px(12));
        c.fill_disc(FACE_CENTRE_PX - offset, cy, r, 0.0);
        c.fill_disc(FACE_CENTRE_PX + offset, cy, r, 0.0);
    }
    if p.present[SmileyGroup::Mouth as usize] {
        let (len, height, cx, cy) = (p.px(13), p.px(14), p.px(15), p.px(16));
        let (x0, x1) = (mround(cx - len / 2.0), mround(cx + len / 2.0));
        let (y0, y1) = (mround(cy - height / 2.0), mround(cy + height / 2.0));
        c.fill((x0, x1), (y0, y1), 0.0);
        let v = p.draws[17] * FEATURES[17].px_per_unit;
        let (inner, outer) = (mround(cy + v), mround(cy + 1.4 * v));
        c.set(x1 + 1, inner, 0.0);
        c.set(x1 + 2, outer, 0.0);
        c.set(x0 - 1, inner, 0.0);
        c.set(x0 - 2, outer, 0.0);
    }
    if p.present[SmileyGroup::Hat as usize] {
        let (cx, cy) = (p.px(4), p.px(5));
        let (brim_w, brim_h) = (p.px(6), p.px(7));
        let (crown_w, crown_h) = (p.px(8), p.px(9));
        let brim_top = mround(cy - brim_h / 2.0);
        c.fill(
            (mround(cx - brim_w / 2.0), mround(cx + brim_w / 2.0)),
            (brim_top, mround(cy + brim_h / 2.0)),
            1.0,
        );
        // The crown's rows run from `crown_h` above the brim's top row down to that row.
        c.fill(
            (mround(cx - crown_w / 2.0), mround(cx + crown_w / 2.0)),
            (mround(brim_top as f64 - crown_h), brim_top),
            1.0,
        );
    }
    c.0
}

/// One row-major image in MATLAB's column-major pixel order (`reshape(I, 1, 1024)`).
pub fn to_column_major(image: &[f32]) -> Vec<f32> {
    assert_eq!(image.len(), SMILEY_PIXELS, "not a 32×32 image");
    let n = SMILEY_SIDE_PX;
    (0..SMILEY_PIXELS)
        .map(|k| image[(k % n) * n + k / n])
        .collect()
}

/// A generated data set; all matrices row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct SmileySet {
    pub n: usize,
    /// n × `SMILEY_PIXELS`, values in {0, 1}.
    pub images: Vec<f32>,
    /// n × `N_SOURCES`: 1 where the feature's group is drawn (the authors' S).
    pub presence: Vec<f32>,
    /// n × `N_SOURCES`: the draws v of every source, drawn or not (the authors' V).
    pub values: Vec<f32>,
}

impl SmileySet {
    pub fn image(&self, i: usize) -> &[f32] {
        &self.images[i * SMILEY_PIXELS..(i + 1) * SMILEY_PIXELS]
    }

    /// S ⊙ V: the source vector latents are correlated with (0 where a group is absent).
    pub fn sources(&self) -> Vec<f32> {
        present_values(&self.presence, &self.values)
    }
}

/// Element-wise S ⊙ V of two n × 18 matrices.
pub fn present_values(presence: &[f32], values: &[f32]) -> Vec<f32> {
    assert_eq!(presence.len(), values.len(), "S and V differ in size");
    presence.iter().zip(values).map(|(s, v)| s * v).collect()
}

/// Generate `n` images from `seed` (ChaCha8), each group present with probability 0.5.
pub fn generate(n: usize, seed: u64) -> SmileySet {
    generate_with(n, seed, 0.5)
}

/// As [`generate`], with the group presence probability given.
pub fn generate_with(n: usize, seed: u64, presence_prob: f64) -> SmileySet {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut set = SmileySet {
        n,
        images: Vec::with_capacity(n * SMILEY_PIXELS),
        presence: Vec::with_capacity(n * N_SOURCES),
        values: Vec::with_capacity(n * N_SOURCES),
    };
    for _ in 0..n {
        let p = SmileyParams::sample(&mut rng, presence_prob);
        set.images.extend(render(&p));
        for (f, &v) in FEATURES.iter().zip(&p.draws) {
            let on = p.present[f.group as usize];
            set.presence.push(if on { 1.0 } else { 0.0 });
            set.values.push(v as f32);
        }
    }
    set
}

/// Errors writing the data set.
#[derive(Debug, thiserror::Error)]
pub enum SmileyError {
    #[error("creating {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Matrix(#[from] MatrixError),
}

/// Write `{prefix}_images.npy` (n × 1024), `{prefix}_presence.npy` and
/// `{prefix}_values.npy` (n × 18), all `<f4`, into `dir`; with `column_major` the images
/// are stored in MATLAB's pixel order.
pub fn write_set_with(
    dir: &Path,
    prefix: &str,
    set: &SmileySet,
    column_major: bool,
) -> Result<(), SmileyError> {
    std::fs::create_dir_all(dir).map_err(|source| SmileyError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let images = if column_major {
        set.images
            .chunks_exact(SMILEY_PIXELS)
            .flat_map(to_column_major)
            .collect()
    } else {
        set.images.clone()
    };
    for (name, cols, data) in [
        ("images", SMILEY_PIXELS, images),
        ("presence", N_SOURCES, set.presence.clone()),
        ("values", N_SOURCES, set.values.clone()),
    ] {
        let m = Matrix {
            rows: set.n,
            cols,
            data,
        };
        write_npy(&dir.join(format!("{prefix}_{name}.npy")), &m)?;
    }
    Ok(())
}

/// [`write_set_with`] in row-major pixel order.
pub fn write_set(dir: &Path, prefix: &str, set: &SmileySet) -> Result<(), SmileyError> {
    write_set_with(dir, prefix, set, false)
}
