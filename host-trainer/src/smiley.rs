//! The Smiley sparse data set (VSC paper, supplement E; `docs/VSC.md` §6).
//!
//! 32×32 binary images. Every image has a filled face (a disc of radius 10 px at the
//! centre). Four attribute groups — eyes, mouth, hat, bow tie — are each present
//! independently with probability 0.5; the features of a present group are drawn from
//! normal distributions. Eyes and mouth are holes cut into the face; the hat sits above
//! the face and the bow tie below it, so neither touches the face rows when absent.
//!
//! The paper gives the feature list and the spreads; the mean geometry below is this
//! project's choice (chosen so every part stays inside the 32×32 canvas at ±3 sd).
//!
//! Ground truth per image: presence `S` (1 where the feature's group is drawn) and
//! values `V`, the offset of each feature from its mean in pixels, 0 where the group is
//! absent — so `V` is itself a sparse source vector, the thing E2 correlates latents with.

use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use crate::matrix::{Matrix, MatrixError, write_npy};

/// Image side length in pixels.
pub const SMILEY_SIDE_PX: usize = 32;
/// Pixels per image (`SMILEY_SIDE_PX²`).
pub const SMILEY_PIXELS: usize = SMILEY_SIDE_PX * SMILEY_SIDE_PX;
/// Number of ground-truth source features.
pub const N_SOURCES: usize = 18;
/// Number of attribute groups.
pub const N_GROUPS: usize = 4;
/// Face disc centre (x and y) and radius in pixels.
pub const FACE_CENTRE_PX: f32 = 16.0;
pub const FACE_RADIUS_PX: f32 = 10.0;
/// Training / test sizes of the paper.
pub const PAPER_N_TRAIN: usize = 60_000;
pub const PAPER_N_TEST: usize = 20_000;

/// Attribute groups, in source order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SmileyGroup {
    Eyes = 0,
    Mouth = 1,
    Hat = 2,
    BowTie = 3,
}

impl SmileyGroup {
    pub const ALL: [SmileyGroup; N_GROUPS] = [Self::Eyes, Self::Mouth, Self::Hat, Self::BowTie];

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
            Self::Eyes => 0..3,
            Self::Mouth => 3..8,
            Self::Hat => 8..14,
            Self::BowTie => 14..18,
        }
    }
}

/// One source feature: its name, group and sampling distribution (pixels).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FeatureSpec {
    pub name: &'static str,
    pub group: SmileyGroup,
    pub mean_px: f32,
    pub sd_px: f32,
}

const fn spec(name: &'static str, group: SmileyGroup, mean_px: f32, sd_px: f32) -> FeatureSpec {
    FeatureSpec {
        name,
        group,
        mean_px,
        sd_px,
    }
}

/// The 18 sources in ground-truth column order. Coordinates: x to the right, y down,
/// pixel (col, row) has its centre at (col + 0.5, row + 0.5).
/// Eyes and mouth: sd 0.5 px (paper). Bow tie: 0.5, 0.25, 1, 1.5 px (paper).
/// Hat: the paper gives no spreads; 0.5 px for positions, 1 px for sizes (our choice).
pub const FEATURES: [FeatureSpec; N_SOURCES] = {
    use SmileyGroup::*;
    [
        spec("eyes_y", Eyes, 12.0, 0.5),
        spec("eyes_separation", Eyes, 8.0, 0.5),
        spec("eyes_radius", Eyes, 1.8, 0.5),
        spec("mouth_y", Mouth, 20.0, 0.5),
        spec("mouth_x", Mouth, 16.0, 0.5),
        spec("mouth_height", Mouth, 2.0, 0.5),
        spec("mouth_length", Mouth, 8.0, 0.5),
        // Offset of the side holes from the mouth's centre line (negative: up, a smile).
        spec("mouth_sides_y", Mouth, -1.5, 0.5),
        // Bottom edge of the large rectangle (the face's top row is y = 6).
        spec("hat_y", Hat, 6.0, 0.5),
        spec("hat_x", Hat, 16.0, 0.5),
        spec("hat_height", Hat, 2.0, 0.5),
        spec("hat_width", Hat, 14.0, 1.0),
        spec("hat_top_height", Hat, 3.0, 0.5),
        spec("hat_top_width", Hat, 7.0, 1.0),
        spec("bowtie_y", BowTie, 28.5, 0.5),
        spec("bowtie_x", BowTie, 16.0, 0.25),
        spec("bowtie_height", BowTie, 4.0, 1.0),
        spec("bowtie_length", BowTie, 10.0, 1.5),
    ]
};

/// Name of source `i` (panics on an out-of-range index: a programming error).
pub fn source_name(i: usize) -> &'static str {
    FEATURES[i].name
}

/// Absolute feature values (pixels) of one image plus which groups are drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SmileyParams {
    pub values_px: [f32; N_SOURCES],
    pub present: [bool; N_GROUPS],
}

impl SmileyParams {
    /// Every group present, every feature at its mean.
    pub fn mean_all_present() -> Self {
        let mut values_px = [0.0; N_SOURCES];
        for (v, f) in values_px.iter_mut().zip(FEATURES.iter()) {
            *v = f.mean_px;
        }
        Self {
            values_px,
            present: [true; N_GROUPS],
        }
    }

    /// Draw one image's parameters: each group present with `presence_prob`.
    pub fn sample(rng: &mut impl Rng, presence_prob: f64) -> Self {
        let mut p = Self::mean_all_present();
        for g in SmileyGroup::ALL {
            p.present[g as usize] = rng.random_bool(presence_prob);
            for s in g.sources() {
                // Always draw, so the stream of random numbers does not depend on presence.
                let f = FEATURES[s];
                let draw = Normal::new(f.mean_px, f.sd_px)
                    .expect("feature sd is a positive constant")
                    .sample(rng);
                p.values_px[s] = draw;
            }
        }
        p
    }
}

fn set_where(img: &mut [f32], value: f32, inside: impl Fn(f32, f32) -> bool) {
    for row in 0..SMILEY_SIDE_PX {
        for col in 0..SMILEY_SIDE_PX {
            let (x, y) = (col as f32 + 0.5, row as f32 + 0.5);
            if inside(x, y) {
                img[row * SMILEY_SIDE_PX + col] = value;
            }
        }
    }
}

/// Draw one 32×32 binary image (row-major, rows top to bottom) from its parameters.
pub fn render(p: &SmileyParams) -> Vec<f32> {
    let mut img = vec![0.0f32; SMILEY_PIXELS];
    let v = &p.values_px;
    set_where(&mut img, 1.0, |x, y| {
        (x - FACE_CENTRE_PX).powi(2) + (y - FACE_CENTRE_PX).powi(2) <= FACE_RADIUS_PX.powi(2)
    });
    if p.present[SmileyGroup::Eyes as usize] {
        let (ey, sep, r) = (v[0], v[1], v[2].max(0.0));
        for ex in [FACE_CENTRE_PX - sep / 2.0, FACE_CENTRE_PX + sep / 2.0] {
            set_where(&mut img, 0.0, |x, y| {
                (x - ex).powi(2) + (y - ey).powi(2) <= r * r
            });
        }
    }
    if p.present[SmileyGroup::Mouth as usize] {
        let (my, mx, mh, ml, side_dy) = (v[3], v[4], v[5].max(0.0), v[6].max(0.0), v[7]);
        set_where(&mut img, 0.0, |x, y| {
            (x - mx).abs() <= ml / 2.0 && (y - my).abs() <= mh / 2.0
        });
        // Side holes: 2×2 px squares just outside the mouth's ends, shifted vertically.
        for sx in [mx - ml / 2.0 - 1.0, mx + ml / 2.0 + 1.0] {
            let sy = my + side_dy;
            set_where(&mut img, 0.0, |x, y| {
                (x - sx).abs() <= 1.0 && (y - sy).abs() <= 1.0
            });
        }
    }
    if p.present[SmileyGroup::Hat as usize] {
        let (hy, hx, h1, w1, h2, w2) = (
            v[8],
            v[9],
            v[10].max(0.0),
            v[11].max(0.0),
            v[12].max(0.0),
            v[13].max(0.0),
        );
        set_where(&mut img, 1.0, |x, y| {
            (x - hx).abs() <= w1 / 2.0 && y <= hy && y >= hy - h1
        });
        set_where(&mut img, 1.0, |x, y| {
            (x - hx).abs() <= w2 / 2.0 && y < hy - h1 && y >= hy - h1 - h2
        });
    }
    if p.present[SmileyGroup::BowTie as usize] {
        let (by, bx, bh, bl) = (v[14], v[15], v[16].max(0.0), v[17].max(0.0));
        // Two triangles meeting at a knot: half-height grows from 30 % at the centre to
        // 100 % at the ends.
        set_where(&mut img, 1.0, |x, y| {
            let dx = (x - bx).abs();
            let half_len = bl / 2.0;
            half_len > 0.0
                && dx <= half_len
                && (y - by).abs() <= bh / 2.0 * (0.3 + 0.7 * dx / half_len)
        });
    }
    img
}

/// A generated data set; all matrices row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct SmileySet {
    pub n: usize,
    /// n × `SMILEY_PIXELS`, values in {0, 1}.
    pub images: Vec<f32>,
    /// n × `N_SOURCES`: 1 where the feature's group is present (S).
    pub presence: Vec<f32>,
    /// n × `N_SOURCES`: offset of the feature from its mean in pixels, 0 where absent (V).
    pub values: Vec<f32>,
}

impl SmileySet {
    pub fn image(&self, i: usize) -> &[f32] {
        &self.images[i * SMILEY_PIXELS..(i + 1) * SMILEY_PIXELS]
    }
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
        for (s, f) in FEATURES.iter().enumerate() {
            let on = p.present[f.group as usize];
            set.presence.push(if on { 1.0 } else { 0.0 });
            set.values
                .push(if on { p.values_px[s] - f.mean_px } else { 0.0 });
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
/// `{prefix}_values.npy` (n × 18), all `<f4`, into `dir`.
pub fn write_set(dir: &Path, prefix: &str, set: &SmileySet) -> Result<(), SmileyError> {
    std::fs::create_dir_all(dir).map_err(|source| SmileyError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for (name, cols, data) in [
        ("images", SMILEY_PIXELS, &set.images),
        ("presence", N_SOURCES, &set.presence),
        ("values", N_SOURCES, &set.values),
    ] {
        let m = Matrix {
            rows: set.n,
            cols,
            data: data.clone(),
        };
        write_npy(&dir.join(format!("{prefix}_{name}.npy")), &m)?;
    }
    Ok(())
}
